[% if backend %]
  // 查看我的数据: what the back end stores about the user (GET /me/data), summed up by
  // kind and shown whole below.
  mfShowMyData(event) {
    const key = event.currentTarget.dataset.key;
    this.setData({ [key + '.status']: '正在读取…', [key + '.mine']: [], [key + '.raw']: '' });
    require('../../utils/backend.js').myData((answer) => {
      if (answer.status !== 200) {
        this.setData({ [key + '.status']: '读取失败，请稍后重试' });
        return;
      }
      const data = answer.body || {};
      const labels = {
        user: '支付宝用户标识', claims: '领券记录', events: '访问记录', orders: '订单', membership: '会员',
        customer: '会员资料', ledger: '积分记录', stamps: '集章记录', subscriptions: '消息订阅', messages: '已发消息',
      };
      const count = (value) => (Array.isArray(value) ? value.length + ' 条' : value ? '有' : '无');
      const mine = Object.keys(data).map((name) => {
        const value = data[name];
        let text = count(value);
        if (name === 'user') {
          text = value.kind + '：' + value.id + (value.firstSeen ? '，首次使用 ' + value.firstSeen : '');
        } else if (value && typeof value === 'object' && !Array.isArray(value)) {
          text = Object.keys(value).map((part) => (labels[part] || part) + ' ' + count(value[part])).join('，');
        }
        return { label: labels[name] || name, text: text };
      });
      this.setData({ [key + '.status']: '以下是我们保存的您的全部数据', [key + '.mine']: mine,
        [key + '.raw']: JSON.stringify(data, null, 2) });
    });
  },
  // 删除我的数据: asked once more, then DELETE /me/data; the answer is shown.
  mfDeleteMyData(event) {
    const key = event.currentTarget.dataset.key;
    my.confirm({
      title: '删除我的数据',
      content: '将删除我们保存的您的全部数据，且无法恢复。已付款的订单和已领的券只保留不含您身份的记录。确定删除吗？',
      confirmButtonText: '删除',
      cancelButtonText: '取消',
      success: (result) => {
        if (!result.confirm) {
          return;
        }
        this.setData({ [key + '.status']: '正在删除…', [key + '.mine']: [], [key + '.raw']: '' });
        require('../../utils/backend.js').forgetMe((answer) => {
          this.setData({ [key + '.status']: answer.status === 204 ? '已删除您的数据' : '删除失败，请稍后重试' });
        });
      },
    });
  },
[% endif %]
