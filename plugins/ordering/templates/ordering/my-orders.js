  // The user's orders from the back end; showing the page logs nobody in (a tap does).
  mfMyOrdersShow() {
    require('../../services/ordering.js').myOrders(this, [[ keys[0] | tojson ]], false);
  },
  onMyOrdersLogin() {
    require('../../services/ordering.js').myOrders(this, [[ keys[0] | tojson ]], true);
  },
  onOrderOpen(event) {
    require('../../services/ordering.js').openOrder(event.currentTarget.dataset.order, false);
  },
  onMyOrdersMenu() {
    require('../../services/ordering.js').openMenu();
  },
