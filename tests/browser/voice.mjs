// Opens examples/voice_server's page in headless Chromium, N pages at once, each with a
// recording as its microphone; presses Start and reports what each page showed, as JSON.
//
//   node tests/browser/voice.mjs --url http://127.0.0.1:8080/ --audio speech.wav
//        [--pages N] [--seconds S] [--stagger MS] [--screenshot out.png]
//
// Page i presses Start i * MS after the first (0: all at once); the pages listen for S
// seconds after the last one started.
//
// Prints {"pages": [{"status", "finals": [{"text", "delay"}], "partials": n, "stable": n,
// "messages": [...]}], "stats": {...}}: each page's transcript messages as the data channel
// brought them, and the server's /stats just before the pages stop.
import { chromium } from "playwright-core";

function args() {
  const a = { pages: 1, seconds: 20, stagger: 0 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
  a.pages = Number(a.pages);
  a.seconds = Number(a.seconds);
  a.stagger = Number(a.stagger);
  if (!a.url || !a.audio) throw new Error("--url and --audio are needed");
  return a;
}

// What the page shows over time: every partial it displayed, and the messages behind it.
function watch() {
  window.__seen = { partials: 0, stable: 0, messages: [] };
  const show = window.show;
  window.show = (t) => {
    window.__seen.messages.push(t);
    show(t);
  };
  new MutationObserver(() => {
    const p = document.getElementById("partial");
    if (p.textContent.trim()) window.__seen.partials++;
    if (p.querySelector(".stable")?.textContent.trim()) window.__seen.stable++;
  }).observe(document.getElementById("partial"), { childList: true, subtree: true, characterData: true });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run() {
  const a = args();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${a.audio}%noloop`,
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  // The pages are tabs of one browser. A context per page, as if each user had a browser of
  // their own, costs these two cores so much more that the pages' audio reached the server
  // broken (8 pages: WER 0.19 against 0.03; first utterances cut in two).
  const context = await browser.newContext();
  const pages = await Promise.all(Array.from({ length: a.pages }, () => context.newPage()));
  await Promise.all(pages.map(async (page, i) => {
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") console.error(`page ${i}: ${m.text()}`);
    });
    await page.goto(a.url);
    await page.evaluate(watch);
  }));
  await Promise.all(pages.map(async (page, i) => {
    await sleep(i * a.stagger);
    await page.click("#start");
  }));
  await sleep(a.seconds * 1000);
  const results = await Promise.all(pages.map((page) => page.evaluate(() => ({
    status: document.getElementById("status").textContent,
    finals: [...document.querySelectorAll("#finals p")].map((p) => ({
      text: p.firstChild.textContent,
      delay: p.querySelector(".latency")?.textContent || "",
    })),
    partials: window.__seen.partials,
    stable: window.__seen.stable,
    messages: window.__seen.messages,
  }))));
  const stats = await pages[0].evaluate(() => fetch("/stats").then((r) => r.json()));
  if (a.screenshot) await pages[0].screenshot({ path: a.screenshot });
  await Promise.all(pages.map((page) => page.click("#stop", { timeout: 2000 }).catch(() => {})));
  await browser.close();
  console.log(JSON.stringify({ pages: results, stats }));
}

run().catch((e) => {
  console.error(`voice.mjs: ${e.message}`);
  process.exit(1);
});
