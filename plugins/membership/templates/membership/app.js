  // What other plugins' generated code tells membership, when this is there: the moments
  // after which the app asks the customer to subscribe to messages
  // (my.requestSubscribeMessage), 'order_paid' or 'coupon_claimed' (the member card's own:
  // 'card_opened'); and 'followed' (the life account followed), which earns the follow's points.
  mfMoment(moment) {
    const membership = require('./services/membership.js');
    if (moment === 'followed') {
      membership.followed();
    } else {
      membership.askSubscriptions(moment);
    }
  },
