  // The pending campaign timer, declared as a page member so `this.mfCampaignTimer` is typed.
  mfCampaignTimer: 0,
  mfStartCampaigns() {
    this.mfTickCampaigns();
  },
  mfStopCampaigns() {
    clearTimeout(this.mfCampaignTimer);
    this.mfCampaignTimer = 0;
  },
  // Campaign blocks show only inside their window; countdowns show the time left. The
  // next tick comes in a second while a countdown is shown, else at the next start or
  // end (none once every campaign is over), and only changed values are set: a page
  // whose campaigns are all hidden is not redrawn every second.
  mfTickCampaigns() {
    const now = Date.now();
    const update = {};
    let counting = false;
    let next = Infinity;
    [[ keys | tojson ]].forEach((key) => {
      const block = /** @type {{ kind: string, to?: string, start: number, end: number, target?: number, visible: boolean, remaining?: string }} */ (this.data[key]);
      const before = block.kind === 'countdown' && block.to === 'start';
      const visible = before ? now < block.start : now >= block.start && now < block.end;
      if (visible !== block.visible) update[key + '.visible'] = visible;
      if (block.kind === 'countdown') {
        const remaining = visible ? this.mfFormatRemaining((block.target || 0) - now) : '';
        if (remaining !== block.remaining) update[key + '.remaining'] = remaining;
        counting = counting || visible;
      }
      [block.start, block.end].forEach((t) => { if (t > now && t < next) next = t; });
    });
    if (Object.keys(update).length) this.setData(update);
    clearTimeout(this.mfCampaignTimer);
    const wait = counting ? 1000 : next - now;
    // setTimeout holds at most 2^31-1 ms (about 24.8 days); a later change is met by a later tick.
    this.mfCampaignTimer = wait === Infinity ? 0 : setTimeout(() => this.mfTickCampaigns(), Math.min(wait, 2147483647));
  },
  mfFormatRemaining(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const pad = (n) => (n < 10 ? '0' : '') + n;
    const days = Math.floor(seconds / 86400);
    const clock = pad(Math.floor(seconds / 3600) % 24) + ':' + pad(Math.floor(seconds / 60) % 60) + ':' + pad(seconds % 60);
    return days > 0 ? days + '天 ' + clock : clock;
  },
