  // The ordering menu (services/ordering.js keeps the cart and the store on the device).
  mfOrderMenuLoad(query) {
    require('../../services/ordering.js').menuLoad(this, [[ keys[0] | tojson ]], query);
  },
  mfOrderMenuShow() {
    require('../../services/ordering.js').menuShow(this, [[ keys[0] | tojson ]]);
  },
  onOrderCategory(event) {
    require('../../services/ordering.js').selectCategory(this, [[ keys[0] | tojson ]], event.currentTarget.dataset.category);
  },
  onOrderStore() {
    require('../../services/ordering.js').changeStore(this, [[ keys[0] | tojson ]]);
  },
  onOrderAdd(event) {
    require('../../services/ordering.js').tapAdd(this, [[ keys[0] | tojson ]], event.currentTarget.dataset.product);
  },
  onOrderChoice(event) {
    const dataset = event.currentTarget.dataset;
    require('../../services/ordering.js').sheetChoose(this, [[ keys[0] | tojson ]], dataset.option, dataset.choice);
  },
  onOrderSheetQuantity(event) {
    require('../../services/ordering.js').sheetQuantity(this, [[ keys[0] | tojson ]], Number(event.currentTarget.dataset.delta));
  },
  onOrderSheetAdd() {
    require('../../services/ordering.js').sheetAdd(this, [[ keys[0] | tojson ]]);
  },
  onOrderSheetClose() {
    require('../../services/ordering.js').closeSheet(this, [[ keys[0] | tojson ]]);
  },
  onOrderCartToggle() {
    require('../../services/ordering.js').toggleCart(this, [[ keys[0] | tojson ]]);
  },
  onOrderLine(event) {
    const dataset = event.currentTarget.dataset;
    require('../../services/ordering.js').changeLine(this, [[ keys[0] | tojson ]], dataset.line, Number(dataset.delta));
  },
  onOrderClear() {
    require('../../services/ordering.js').clearCart(this, [[ keys[0] | tojson ]]);
  },
  onOrderCheckout() {
    require('../../services/ordering.js').checkout(this, [[ keys[0] | tojson ]]);
  },
