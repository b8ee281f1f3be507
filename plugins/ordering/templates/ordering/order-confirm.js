  // The confirm page: the device's cart, sent to the back end, paid with my.tradePay.
  mfOrderConfirmShow() {
    require('../../services/ordering.js').confirmShow(this, [[ keys[0] | tojson ]]);
  },
  onOrderMode(event) {
    require('../../services/ordering.js').chooseMode(this, [[ keys[0] | tojson ]], event.currentTarget.dataset.mode);
  },
  onOrderTable(event) {
    require('../../services/ordering.js').enterTable(this, [[ keys[0] | tojson ]], event.detail.value, false);
  },
  onOrderTableInput(event) {
    require('../../services/ordering.js').enterTable(this, [[ keys[0] | tojson ]], event.detail.value, true);
  },
  onOrderSubmit() {
    require('../../services/ordering.js').submit(this, [[ keys[0] | tojson ]]);
  },
  onOrderConfirmMenu() {
    require('../../services/ordering.js').openMenu();
  },
