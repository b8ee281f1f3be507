  // The running countdown timer, declared as a page member so `this.mfCampaignTimer` is typed.
  mfCampaignTimer: 0,
  mfStartCampaigns() {
    this.mfTickCampaigns();
    this.mfCampaignTimer = setInterval(() => this.mfTickCampaigns(), 1000);
  },
  mfStopCampaigns() {
    clearInterval(this.mfCampaignTimer);
  },
  // Campaign blocks show only inside their window; countdowns show the time left.
  mfTickCampaigns() {
    const now = Date.now();
    const update = {};
    [[ keys | tojson ]].forEach((key) => {
      const block = /** @type {{ kind: string, to?: string, start: number, end: number, target?: number }} */ (this.data[key]);
      const before = block.kind === 'countdown' && block.to === 'start';
      const visible = before ? now < block.start : now >= block.start && now < block.end;
      update[key + '.visible'] = visible;
      if (block.kind === 'countdown') {
        update[key + '.remaining'] = visible ? this.mfFormatRemaining(block.target - now) : '';
      }
    });
    this.setData(update);
  },
  mfFormatRemaining(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const pad = (n) => (n < 10 ? '0' : '') + n;
    const days = Math.floor(seconds / 86400);
    const clock = pad(Math.floor(seconds / 3600) % 24) + ':' + pad(Math.floor(seconds / 60) % 60) + ':' + pad(seconds % 60);
    return days > 0 ? days + '天 ' + clock : clock;
  },
