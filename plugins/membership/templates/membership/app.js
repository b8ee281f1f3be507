  // The moments after which the app asks the customer to subscribe to messages
  // (my.requestSubscribeMessage): other plugins' generated code calls this, when it is
  // there, with 'order_paid' or 'coupon_claimed'; the member card with 'card_opened'.
  mfMoment(moment) {
    require('./services/membership.js').askSubscriptions(moment);
  },
