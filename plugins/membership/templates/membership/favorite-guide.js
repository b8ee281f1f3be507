  // The favourites tip: shown until closed, once per device (a flag in storage).
  mfFavoriteGuideShow() {
    require('../../services/membership.js').showGuide(this, [[ keys | tojson ]]);
  },
  onFavoriteGuideClose() {
    require('../../services/membership.js').closeGuide(this, [[ keys | tojson ]]);
  },
