  // Channel attribution: entry-point QR codes and shares open with ?ch=<channel>&ep=<entry point>.
  // The latest attribution is kept in globalData and storage; the coupon service sends it.
  mfAttribute(options) {
    const query = (options && options.query) || {};
    if (query.ch || query.ep) {
      const attribution = { channel: query.ch || '', entryPoint: query.ep || '', at: Date.now() };
      this.globalData.channel = attribution.channel;
      this.globalData.entryPoint = attribution.entryPoint;
      my.setStorageSync({ key: 'mpforge.attribution', data: attribution });
    } else if (!this.globalData.channel) {
      const stored = my.getStorageSync({ key: 'mpforge.attribution' });
      const saved = /** @type {{ channel: string, entryPoint: string } | null} */ (stored && stored.data);
      if (saved) {
        this.globalData.channel = saved.channel;
        this.globalData.entryPoint = saved.entryPoint;
      }
    }
  },
