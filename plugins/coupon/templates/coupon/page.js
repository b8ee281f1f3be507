  // The coupon blocks' view of the back end (coupon service), and the coupon whose
  // "放入卡包" (Alipay's coupon plugin) was tapped last; page members so they are typed.
  mfCouponView: null,
  mfCouponTapped: '',
  mfRefreshCoupons() {
    require('../../services/coupon.js').refresh(this, [[ keys | tojson ]]);
  },
  onClaimCoupon(event) {
    require('../../services/coupon.js').claim(this, [[ keys | tojson ]], event.currentTarget.dataset.coupon);
  },
  onCouponPluginTap(event) {
    this.mfCouponTapped = event.currentTarget.dataset.coupon;
  },
  onCouponPluginSuccess() {
    require('../../services/coupon.js').pluginSucceeded(this, [[ keys | tojson ]], this.mfCouponTapped);
  },
  onCouponPluginFail() {
    my.showToast({ type: 'none', content: '未能放入卡包，请稍后再试' });
  },
  onOpenCardPack() {
    require('../../services/coupon.js').openCardPack();
  },
