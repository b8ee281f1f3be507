  // Channel attribution. An entry point's QR code opens the app with its query (ch, ep,
  // store, table) in the launch options; a shared card or a page link brings its query to
  // the page's onLoad instead. The scene tells a QR scan (1011) from a share card (1007)
  // or a search (1005). The latest attribution is kept in globalData and storage; the
  // coupon service and the back end read it.
  mfAttribute(options) {
    const launch = options || {};
    if (launch.scene) {
      this.globalData.scene = Number(launch.scene) || 0;
    }
    this.mfRecordVisit(launch.query || {});
  },
  mfAttributePage(query) {
    this.mfRecordVisit(query || {});
  },
  mfRecordVisit(query) {
    if (query.ch || query.ep || query.store || query.table || query.chInfo) {
      const attribution = {
        channel: query.ch || '', entryPoint: query.ep || '', store: query.store || '', table: query.table || '',
        chInfo: query.chInfo || '', scene: this.globalData.scene || 0, at: Date.now(),
      };
      Object.assign(this.globalData, attribution);
      my.setStorageSync({ key: 'mpforge.attribution', data: attribution });
    } else if (!this.globalData.channel) {
      const stored = my.getStorageSync({ key: 'mpforge.attribution' });
      const saved = /** @type {{ channel: string, entryPoint: string, store?: string, table?: string } | null} */ (stored && stored.data);
      if (saved) {
        this.globalData.channel = saved.channel;
        this.globalData.entryPoint = saved.entryPoint;
        this.globalData.store = saved.store || '';
        this.globalData.table = saved.table || '';
      }
    }
  },
