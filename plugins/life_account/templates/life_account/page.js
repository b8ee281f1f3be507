  onFollowLifeAccount() {
    const app = getApp();
    if (app && typeof app.mfMoment === 'function') { // the membership plugin's follow points, when it is there
      app.mfMoment('followed');
    }
    const reward = this.data.[[ keys[0] ]].reward;
    if (reward) {
      require('../../services/coupon.js').claim(this, [], reward);
    } else {
      my.showToast({ type: 'success', content: '感谢关注' });
    }
  },
