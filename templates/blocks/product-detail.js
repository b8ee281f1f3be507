  // The product the page was opened for (?item=<id>); an id the catalogue lacks (an old
  // share, a removed product) says so instead of showing another product.
  mfShowProduct(query) {
    if (!query.item) {
      return;
    }
    const update = {};
    [[ keys | tojson ]].forEach((key) => {
      const block = /** @type {{ products: Object<string, { name: string }> }} */ (this.data[key]);
      const product = Object.prototype.hasOwnProperty.call(block.products, query.item) ? block.products[query.item] : null;
      update[key + '.current'] = product;
      if (product) {
        my.setNavigationBar({ title: product.name });
      }
    });
    this.setData(update);
  },
