// The merchant pages' login (order board, till, customer view): posts the token; the
// server answers with an HttpOnly session cookie, and the page reloads as itself.
"use strict";
(function () {
  const form = document.getElementById("login-form");
  const input = document.getElementById("token");
  const button = document.getElementById("login-button");
  const error = document.getElementById("login-error");
  const MESSAGES = {
    wrong_staff_token: "口令不对，请向店长确认后重试。",
    too_many_logins: "尝试次数过多，请稍后再试。",
    staff_login_disabled: "此页面尚未开启：请店长在服务器上设置口令（MPFORGE_STAFF_TOKEN_<appid> 或 MPFORGE_MANAGER_TOKEN_<appid>）后重启。",
    cross_origin: "请从页面本身登录。",
  };

  function show(text) {
    error.textContent = text;
    error.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      const response = await fetch("login", {
        method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({token: input.value}),
      });
      if (response.status === 204) {
        window.location.reload();
        return;
      }
      const body = await response.json().catch(() => null);
      const code = body && body.error ? body.error.code : "";
      let text = MESSAGES[code] || (body && body.error ? body.error.message : "登录失败（" + response.status + "）");
      const wait = response.headers.get("Retry-After");
      if (code === "too_many_logins" && wait) text = "尝试次数过多，请 " + wait + " 秒后再试。";
      show(text);
      input.select();
    } catch (e) {
      show("连不上服务器，请检查网络后重试。");
    } finally {
      button.disabled = false;
    }
  });
})();
