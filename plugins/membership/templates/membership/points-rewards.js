  // Coupons for points: the member's points on show; 兑换 spends them.
  mfRewardsShow() {
    require('../../services/membership.js').showRewards(this, [[ keys | tojson ]]);
  },
  onRewardRedeem(event) {
    require('../../services/membership.js').redeem(this, [[ keys | tojson ]], event.currentTarget.dataset.coupon);
  },
