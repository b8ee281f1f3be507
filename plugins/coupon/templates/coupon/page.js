  mfRefreshCoupons() {
    require('../../services/coupon.js').refresh(this, [[ keys | tojson ]]);
  },
  onClaimCoupon(event) {
    require('../../services/coupon.js').claim(this, [[ keys | tojson ]], event.currentTarget.dataset.coupon);
  },
