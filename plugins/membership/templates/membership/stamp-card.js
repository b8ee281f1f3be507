  // The stamp card: stamps from the back end on show; 扫码集点 scans the till's code.
  mfStampCardShow() {
    require('../../services/membership.js').showStamps(this, [[ keys | tojson ]]);
  },
  onStampScan() {
    require('../../services/membership.js').scanStamp(this, [[ keys | tojson ]]);
  },
