  // One order (?id=): fetched on show, by pulling down, and every few seconds while it
  // is under way. Page members so they are typed.
  mfOrderId: '',
  mfOrderTimer: 0,
  mfOrderGeneration: 0, // the polling loop's; a tick of an older one schedules nothing
  mfOrderLoad(query) {
    this.mfOrderId = String(query.id || '');
  },
  mfOrderShow() {
    require('../../services/ordering.js').orderShow(this, [[ keys[0] | tojson ]]);
  },
  mfOrderHide() {
    require('../../services/ordering.js').orderHide(this);
  },
  onOrderLogin() {
    require('../../services/ordering.js').orderLogin(this, [[ keys[0] | tojson ]]);
  },
  onOrderPay() {
    require('../../services/ordering.js').orderPay(this, [[ keys[0] | tojson ]]);
  },
  onOrderDetailMenu() {
    require('../../services/ordering.js').openMenu();
  },
