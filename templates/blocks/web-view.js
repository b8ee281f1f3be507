  // Opened without a url (e.g. by review crawling every page of app.json): say so rather
  // than show a blank page.
  mfBack() {
    my.navigateBack();
  },
  mfLoadWebView(query) {
    if (query.url) {
      this.setData({ '[[ keys[0] ]].url': decodeURIComponent(query.url) });
    }
  },
