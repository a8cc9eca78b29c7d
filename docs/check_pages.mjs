// make docs-check: loads every page of the built site in headless Chromium.
//
//   node docs/check_pages.mjs --site docs/_build/html --chromium /usr/bin/chromium \
//       [--screenshots DIR]
//
// Serves the site on 127.0.0.1 and opens each page. A page fails on a JavaScript
// error (an uncaught exception or a console error), a request that fails or
// answers >= 400, a request that leaves 127.0.0.1 (the site must work offline), an
// image that does not load, a formula MathJax did not typeset (or typeset as an
// error), or content wider than the page. Then every internal link is resolved:
// its page must exist and its #anchor must be an id on that page. Screenshots
// of the index, the lecture and one API page go to DIR. Exit status 1 on any
// failure, with one line per problem.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { chromium } from "playwright-core";

function parseArgs(argv) {
  const args = { site: "docs/_build/html", chromium: "/usr/bin/chromium", screenshots: null };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in args)) throw new Error(`unknown option ${argv[i]}`);
    args[key] = argv[i + 1];
  }
  return args;
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".css": "text/css",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".json": "application/json",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".txt": "text/plain",
};

function serve(root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    let file = path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end("not found");
        return;
      }
      res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream" });
      res.end(data);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function htmlPages(root) {
  const pages = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const rel = path.relative(root, full);
      if (entry.isDirectory()) {
        if (!["_static", "_sources", "_images", "_modules"].includes(rel)) walk(full);
      } else if (entry.name.endsWith(".html")) {
        pages.push(rel.split(path.sep).join("/"));
      }
    }
  };
  walk(root);
  return pages.sort();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const root = path.resolve(args.site);
  if (!fs.existsSync(path.join(root, "index.html"))) {
    console.error(`error: ${root}/index.html not found; run make docs first`);
    process.exit(1);
  }
  const server = await serve(root);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  const ids = new Map(); // page -> Set of element ids
  const links = []; // [from page, href]
  const shots = new Map([ // page -> [file, section id to scroll to]
    ["index.html", [["index.png", null]]],
    ["lecture.html", [["lecture.png", null], ["lecture_svm.png", "the-multiclass-svm-loss"]]],
    ["api/_generated/linear_jax.html", [["api_linear_jax.png", "linear_jax.objective"]]],
  ]);
  if (args.screenshots) fs.mkdirSync(args.screenshots, { recursive: true });

  const pages = htmlPages(root);
  let formulas = 0;
  for (const rel of pages) {
    const page = await context.newPage();
    const here = [];
    page.on("pageerror", (e) => here.push(`JavaScript error: ${e.message.split("\n")[0]}`));
    page.on("console", (m) => {
      if (m.type() === "error") here.push(`console error: ${m.text().split("\n")[0]}`);
    });
    page.on("requestfailed", (r) => here.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    page.on("response", (r) => {
      if (r.status() >= 400) here.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
      here.push(`request leaves the site (offline docs): ${url}`);
      return route.abort();
    });
    const t0 = Date.now();
    await page.goto(`${origin}/${rel}`, { waitUntil: "load" });
    const info = await page.evaluate(async () => {
      const math = document.querySelectorAll(".math");
      if (math.length && window.MathJax?.startup?.promise) await window.MathJax.startup.promise;
      const untypeset = [...math].filter((e) => !e.querySelector("mjx-container")).length;
      const mathErrors = document.querySelectorAll("mjx-merror").length;
      const images = [...document.images];
      await Promise.all(images.map((img) => (img.complete ? null : new Promise((r) => (img.onload = img.onerror = r)))));
      const brokenImages = images.filter((img) => !img.naturalWidth).map((img) => img.getAttribute("src"));
      const main = document.querySelector("article") || document.body;
      const wide = [...main.querySelectorAll("img, pre, table, mjx-container[display=true]")].filter((e) => {
        const box = e.getBoundingClientRect();
        const frame = main.getBoundingClientRect();
        let scroller = e.parentElement; // a scrolling parent shows all of it
        while (scroller && scroller !== main) {
          const style = getComputedStyle(scroller);
          if (["auto", "scroll"].includes(style.overflowX)) return false;
          scroller = scroller.parentElement;
        }
        return box.right > frame.right + 2;
      }).length;
      return {
        ids: [...document.querySelectorAll("[id]")].map((e) => e.id),
        hrefs: [...document.querySelectorAll("a[href]")].map((a) => a.getAttribute("href")),
        math: math.length,
        untypeset,
        mathErrors,
        images: images.length,
        brokenImages,
        wide,
        overflow: document.scrollingElement.scrollWidth > document.scrollingElement.clientWidth + 1,
      };
    });
    if (info.untypeset) here.push(`${info.untypeset} of ${info.math} formulas not typeset by MathJax`);
    if (info.mathErrors) here.push(`${info.mathErrors} MathJax errors`);
    for (const src of info.brokenImages) here.push(`image does not load: ${src}`);
    if (info.wide) here.push(`${info.wide} images, code blocks, tables or formulas wider than the page`);
    if (info.overflow) here.push("the page scrolls sideways");
    ids.set(rel, new Set(info.ids));
    for (const href of info.hrefs) links.push([rel, href]);
    formulas += info.math;
    for (const [file, id] of (args.screenshots && shots.get(rel)) || []) {
      if (id) {
        // "instant": the theme scrolls smoothly, which a screenshot would catch midway.
        await page.evaluate((i) => document.getElementById(i)?.scrollIntoView({ behavior: "instant" }), id);
      }
      await page.screenshot({ path: path.join(args.screenshots, file) });
    }
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(
      `${here.length ? "FAIL" : "ok  "} ${rel}  (${info.math} formulas, ${info.images} images, ` +
        `${info.hrefs.length} links, ${seconds} s)`,
    );
    for (const p of here) problems.push(`${rel}: ${p}`);
    await page.close();
  }
  await browser.close();
  server.close();

  let internal = 0;
  for (const [from, href] of links) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith("//")) continue; // external
    internal += 1;
    const url = new URL(href, `${origin}/${from}`);
    let target = decodeURIComponent(url.pathname).replace(/^\//, "");
    if (target === "" || target.endsWith("/")) target += "index.html";
    const file = path.join(root, target);
    if (!fs.existsSync(file)) {
      problems.push(`${from}: broken link ${href} (no ${target})`);
      continue;
    }
    const anchor = decodeURIComponent(url.hash.replace(/^#/, ""));
    if (anchor && target.endsWith(".html") && !ids.get(target)?.has(anchor)) {
      problems.push(`${from}: broken anchor ${href} (no id "${anchor}" in ${target})`);
    }
  }
  console.log(
    `${pages.length} pages, ${formulas} formulas, ${internal} internal links checked; ` +
      `${problems.length} problems`,
  );
  for (const p of problems) console.log(`  ${p}`);
  process.exit(problems.length ? 1 : 0);
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
