#!/usr/bin/env node
// Checks an mpforge output folder with third-party tools, not mpforge's own rules:
//
//   axml  Alipay's AXML parser (@alipay/axml-transverter) on every .axml: bad {{ }}
//         expressions, a:elif / a:else without a:if, bad tag names, unclosed quotes and
//         comments, HTML entities.
//   wcc   WeChat's template compiler (miniprogram-compiler) on every .axml fed as .wxml:
//         unclosed, mismatched and stray end tags, which the AXML parser repairs silently.
//   tsc   TypeScript over every .js (allowJs + checkJs) with Alipay's API typings
//         (@mini-types/alipay) and mpforge-env.d.ts: App, Page, Component and my.* calls.
//   node  `node --check` on every .js.
//
// Usage: node check.js OUTPUT_DIR [--only axml,wcc,tsc,node]
// Prints one `error: FILE:LINE:COL: [check] message` line per problem (FILE relative to
// OUTPUT_DIR) on stderr and exits 1 if there is any; exits 0 when all pass, 2 on bad
// usage or a broken tool folder.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const HERE = __dirname;
const CHECKS = ['axml', 'wcc', 'tsc', 'node'];
const SHIM = path.join(HERE, 'mpforge-env.d.ts');

function usage(message) {
  process.stderr.write(`check.js: ${message}\nusage: node check.js OUTPUT_DIR [--only ${CHECKS.join(',')}]\n`);
  process.exit(2);
}

function requireTool(name) {
  try {
    return require(name);
  } catch (err) {
    process.stderr.write(
      `check.js: cannot load ${name} (${err.code || err.message}); install the pinned tools with ` +
      `\`npm ci --prefix ${HERE}\`\n`);
    process.exit(2);
  }
}

function parseArgs(argv) {
  let root = null;
  let only = CHECKS;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--only') {
      only = (argv[++i] || '').split(',').filter(Boolean);
      const unknown = only.filter((c) => !CHECKS.includes(c));
      if (unknown.length || !only.length) usage(`unknown check in --only: ${unknown.join(',') || '(none)'}`);
    } else if (arg.startsWith('-')) {
      usage(`unknown option ${arg}`);
    } else if (root === null) {
      root = arg;
    } else {
      usage('one output folder only');
    }
  }
  if (root === null) usage('missing OUTPUT_DIR');
  root = path.resolve(root);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) usage(`not a folder: ${root}`);
  return { root, only };
}

// Every file under root with one of `exts`, as sorted POSIX paths relative to root.
// Hidden entries and node_modules are skipped.
function listFiles(root, exts) {
  const found = [];
  (function walk(dir) {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && exts.includes(path.extname(entry.name))) {
        found.push(path.relative(root, full).split(path.sep).join('/'));
      }
    }
  })(root);
  return found.sort();
}

const problems = [];

function report(file, line, column, check, message) {
  const where = line ? `${file}:${line}:${column || 1}` : file;
  const text = `error: ${where}: [${check}] ${message.replace(/\s*\n\s*/g, ' ').trim()}`;
  problems.push({ file, line: Number(line) || 0, order: problems.length, text });
}

// -- axml: Alipay's parser -------------------------------------------------------------
function checkAxml(root, files) {
  const { TransformCompiler } = requireTool('@alipay/axml-transverter');
  const compiler = new TransformCompiler({ platform: 'ALIPAY', customMapping: {} }, []);
  for (const file of files) {
    const source = fs.readFileSync(path.join(root, file), 'utf8');
    try {
      compiler.compile(source);
    } catch (err) {
      // Its errors carry a code frame: "message\nat (undefined:LINE:COL)\nLINE: source\n  ^".
      const text = String((err && err.message) || err);
      const at = /at \(undefined:(\d+):(\d+)\)/.exec(text);
      let message = text.split(/\nat \(undefined:/)[0].replace(/错误码:|错误信息:/g, '').trim();
      if (/E2046/.test(message)) {
        message += ' (the parser rejects HTML entities such as &nbsp; or &amp; in text: write the character itself)';
      }
      report(file, at ? at[1] : null, at ? at[2] : null, 'axml', message || 'parse error');
    }
  }
}

// -- wcc: WeChat's template compiler -----------------------------------------------------
function checkWcc(root, files) {
  const { wxmlToJs } = requireTool('miniprogram-compiler');
  // Mirror every .axml as .wxml so <import>/<include> between templates still resolve,
  // then compile one file at a time so each problem names its own file.
  const mirror = fs.mkdtempSync(path.join(os.tmpdir(), 'mpforge-wcc-'));
  try {
    for (const file of files) {
      const target = path.join(mirror, file.replace(/\.axml$/, '.wxml'));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(path.join(root, file), target);
    }
    for (const file of files) {
      const wxml = file.replace(/\.axml$/, '.wxml');
      try {
        wxmlToJs(mirror, { wxmlList: [wxml] });
      } catch (err) {
        if (err && err.code) {
          // The compiler binary itself did not start (e.g. EACCES on a read-only node_modules).
          process.stderr.write(`check.js: cannot run wcc (${err.code}: ${err.message}); reinstall with ` +
            `\`npm ci --prefix ${HERE}\` in a writable folder\n`);
          process.exit(2);
        }
        const text = String((err && err.message) || err).replace(/^编译 \.wxml 文件错误：/, '');
        const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
        let reported = false;
        for (const line of lines) {
          const m = /^(?:\.\/)?(.+?\.wxml):(\d+):(\d+):\s*(.*)$/.exec(line);
          if (m) {
            report(m[1].replace(/\.wxml$/, '.axml'), m[2], m[3], 'wcc', m[4]);
            reported = true;
          }
        }
        if (!reported) report(file, null, null, 'wcc', lines.join(' ') || 'compile error');
      }
    }
  } finally {
    fs.rmSync(mirror, { recursive: true, force: true });
  }
}

// -- tsc: TypeScript with Alipay's typings -------------------------------------------
function checkTsc(root, files) {
  const ts = requireTool('typescript');
  if (!fs.existsSync(path.join(HERE, 'node_modules', '@mini-types', 'alipay'))) {
    requireTool('@mini-types/alipay'); // reports the npm ci fix
  }
  const options = {
    allowJs: true,
    checkJs: true,
    noEmit: true,
    // What the mini-program runtime offers: ES2017 built-ins, no DOM, no Node; the rest
    // comes from @mini-types/alipay through the shim.
    target: ts.ScriptTarget.ES2017,
    lib: ['lib.es2017.d.ts'],
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: [],
    skipLibCheck: true,
  };
  const rootNames = files.map((f) => path.join(root, f)).concat([SHIM]);
  const program = ts.createProgram(rootNames, options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  for (const d of diagnostics) {
    const message = `TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    if (d.file) {
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start || 0);
      const rel = path.relative(root, d.file.fileName);
      const name = rel.startsWith('..') ? d.file.fileName : rel.split(path.sep).join('/');
      report(name, line + 1, character + 1, 'tsc', message);
    } else {
      report('(tsc)', null, null, 'tsc', message);
    }
  }
}

// -- node --check ------------------------------------------------------------------------
// One `node --check FILE` per file (it checks only its first file), a few at a time.
function nodeCheck(root, file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--check', path.join(root, file)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.on('error', (err) => resolve({ file, status: -1, stderr: String(err) }));
    child.on('close', (status) => resolve({ file, status, stderr }));
  });
}

async function checkNode(root, files) {
  const queue = files.slice();
  const results = [];
  const workers = Array.from({ length: Math.max(2, os.cpus().length) }, async () => {
    while (queue.length) results.push(await nodeCheck(root, queue.shift()));
  });
  await Promise.all(workers);
  results.sort((a, b) => (a.file < b.file ? -1 : 1));
  for (const { file, status, stderr } of results) {
    if (status === 0) continue;
    // stderr: "/abs/file.js:LINE\n<source>\n  ^\n\nSyntaxError: message\n    at ..."
    const lineMatch = /\.js:(\d+)\r?\n/.exec(stderr);
    const errorLine = stderr.split('\n').find((l) => /^\w*Error\b/.test(l));
    report(file, lineMatch ? lineMatch[1] : null, null, 'node', errorLine || stderr.trim() || `exit ${status}`);
  }
}

async function main() {
  const { root, only } = parseArgs(process.argv.slice(2));
  const axml = listFiles(root, ['.axml']);
  const js = listFiles(root, ['.js']);
  const timings = [];
  const run = async (name, fn, files) => {
    if (!only.includes(name)) return;
    const start = Date.now();
    await fn(root, files);
    timings.push(`${name} ${((Date.now() - start) / 1000).toFixed(1)}s${name === 'node' ? ' (alongside the others)' : ''}`);
  };
  // The `node --check` processes run while the in-process checks below keep this one busy.
  const nodeDone = run('node', checkNode, js);
  await run('axml', checkAxml, axml);
  await run('wcc', checkWcc, axml);
  await run('tsc', checkTsc, js);
  await nodeDone;
  // By file, then line; checks in the order they ran.
  problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.order - b.order));
  const summary = `${axml.length} .axml, ${js.length} .js; ${timings.join(', ')}`;
  if (problems.length) {
    process.stderr.write(problems.map((p) => p.text).join('\n') + '\n');
    process.stderr.write(`check.js: ${problems.length} problem(s) in ${root} (${summary})\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`check.js: ok: ${root} (${summary})\n`);
}

main().catch((err) => {
  process.stderr.write(`check.js: internal error: ${(err && err.stack) || err}\n`);
  process.exitCode = 2;
});
