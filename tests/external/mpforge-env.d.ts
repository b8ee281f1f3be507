// What the Alipay mini-program runtime gives generated code beyond Alipay's published typings.
// check.js adds this file to the TypeScript program it runs over an output folder; it is
// never copied into the output.
/// <reference types="@mini-types/alipay" />

// The JS engine's timers and console: the mini-program runtime has them, but
// @mini-types/alipay declares neither (and we do not load the DOM or Node typings).
interface MpforgeConsole {
  log(...args: any[]): void;
  info(...args: any[]): void;
  warn(...args: any[]): void;
  error(...args: any[]): void;
  debug(...args: any[]): void;
}
declare var console: MpforgeConsole;
declare function setTimeout(handler: (...args: any[]) => void, timeout?: number, ...args: any[]): number;
declare function clearTimeout(id?: number): void;
declare function setInterval(handler: (...args: any[]) => void, timeout?: number, ...args: any[]): number;
declare function clearInterval(id?: number): void;

// app.js `globalData`: what builder/plan.py puts there (appName, version) and what the
// promotion plugin's attribution script sets at run time (scene, channel, entry point,
// store, table, chInfo).
interface MpforgeGlobalData {
  appName: string;
  version: string;
  scene?: number;
  channel?: string;
  entryPoint?: string;
  store?: string;
  table?: string;
  chInfo?: string;
}

// App members the core defines: mfPageLoad exists when a plugin reads page queries
// (templates/app/app.js).
interface IGlobalMiniProgramExtraThis4App {
  globalData: MpforgeGlobalData;
  mfPageLoad?: (query: Record<string, string>) => void;
  // The membership plugin's (plugins/membership/templates/membership/app.js): ordering and
  // coupon code calls it, when it is there, after an order is paid or a coupon claimed.
  mfMoment?: (moment: string) => void;
}

// Page#setData also takes data paths as keys ('b0.url', 'list[2].title'), which Alipay
// documents but the typings (keys of `data` only) do not allow.
declare namespace MiniProgram.Page {
  interface IInstanceMethods<Data> {
    setData(
      data: { [path: `${string}.${string}` | `${string}[${number}]${string}`]: unknown },
      callback?: () => void
    ): void;
  }
}
