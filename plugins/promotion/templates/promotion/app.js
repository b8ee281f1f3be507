  // Channel attribution. An entry point's QR code opens the app with its query (ch, ep,
  // store, table) in the launch options; a shared card or a page link brings its query to
  // the page's onLoad instead. The scene tells a QR scan (1011) from a share card (1007)
  // or a search (1005). The latest attribution is kept in globalData and storage; the
  // coupon service reads it[% if backend %], and the back end records each opening of the
  // app and each attributed page visit (utils/backend.js, POST events)[% endif %]. App
  // onShow gets the launch options on a cold start too, so it alone records openings.
  mfAttribute(options) {
    const launch = options || {};
    if (launch.scene) {
      this.globalData.scene = Number(launch.scene) || 0;
    }
    this.mfRecordVisit(launch.query || {}, [% if backend %]'open'[% else %]''[% endif %]);
  },
  mfAttributePage(query) {
    this.mfRecordVisit(query || {}, [% if backend %]'visit'[% else %]''[% endif %]);
  },
  mfRecordVisit(query, kind) {
    const attributed = Boolean(query.ch || query.ep || query.store || query.table || query.chInfo);
    if (attributed) {
      const attribution = {
        channel: query.ch || '', entryPoint: query.ep || '', store: query.store || '', table: query.table || '',
        chInfo: query.chInfo || '', scene: this.globalData.scene || 0, at: Date.now(),
      };
      Object.assign(this.globalData, attribution);
      my.setStorageSync({ key: 'mpforge.attribution', data: attribution });
    }
[% if backend %]
    // An opening is always recorded; a page load only when it brings attribution.
    if (kind === 'open' || (kind && attributed)) {
      const data = this.globalData;
      require('./utils/backend.js').record(kind, {
        scene: data.scene || '', channel: data.channel, entryPoint: data.entryPoint, store: data.store,
        table: data.table, chInfo: data.chInfo,
      });
    }
[% endif %]
    if (!attributed && !this.globalData.channel) {
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
