  mfLoadWebView(query) {
    if (query.url) {
      this.setData({ '[[ keys[0] ]].url': decodeURIComponent(query.url) });
    }
  },
