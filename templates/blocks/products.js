  // The product the page was opened for (?item=<id>), on product-detail blocks; an id the
  // catalogue lacks (an old share, a removed product) says so instead of showing another.
  mfShowProduct(query) {
    if (!query.item) {
      return;
    }
    const update = {};
    [[ keys | tojson ]].forEach((key) => {
      const block = /** @type {{ products?: Object<string, { name: string }> }} */ (this.data[key]);
      if (!block.products) {
        return;
      }
      const product = Object.prototype.hasOwnProperty.call(block.products, query.item) ? block.products[query.item] : null;
      update[key + '.current'] = product;
      if (product) {
        my.setNavigationBar({ title: product.name });
      }
    });
    this.setData(update);
  },
  // Catalogue products' names, prices and stock from the back end's runtime content (a
  // price change needs no new version of the app); products written in a block stay.
  mfRefreshProducts() {
[% if backend %]
    require('../../utils/backend.js').content((content) => {
      const live = {};
      ((content && content.products) || []).forEach((p) => { live[p.id] = p; });
      const fresh = (item) => {
        const p = item && item.id && live[item.id];
        return p ? Object.assign({}, item, {
          name: p.name, price: p.priceText, original_price: p.originalPriceText, sold_out: p.soldOut,
        }) : item;
      };
      const update = {};
      [[ keys | tojson ]].forEach((key) => {
        const block = /** @type {{ items?: Array<any>, products?: Object<string, any>, current?: any }} */ (this.data[key]);
        if (block.items && block.items.some((item) => item.id && live[item.id])) {
          update[key + '.items'] = block.items.map(fresh);
        }
        if (block.products) {
          const products = {};
          Object.keys(block.products).forEach((id) => { products[id] = fresh(block.products[id]); });
          update[key + '.products'] = products;
          update[key + '.current'] = fresh(block.current);
        }
      });
      if (Object.keys(update).length) {
        this.setData(update);
      }
    });
[% else %]
    // The spec names no back end: the build's names and prices stay.
[% endif %]
  },
