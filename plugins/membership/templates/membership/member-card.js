  // The member card: the customer's card, level and points from the back end on show;
  // 领取会员卡 opens Alipay's claim page (会员私域插件) and then opens the card.
  mfMemberCardShow() {
    require('../../services/membership.js').showCard(this, [[ keys | tojson ]]);
  },
  onMemberCardClaim() {
    require('../../services/membership.js').claimCard(this, [[ keys | tojson ]]);
  },
