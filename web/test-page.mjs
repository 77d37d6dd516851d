// Opens the built page in headless Chromium with software WebGPU (SwiftShader), waits until it
// has trained, saves a screenshot and prints one JSON line:
//   {"steps": N, "loss_first": a, "loss_last": b, "fps": f, ...}
// Usage: node web/test-page.mjs URL SHOT.png [MIN_STEPS] [TIMEOUT_S]
// With NO_WEBGPU=1 it opens the page with WebGPU switched off instead, and prints the message
// the page shows: {"no_webgpu_message": "..."}.
import { writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, shot, minStepsArg, timeoutArg] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node web/test-page.mjs URL SHOT.png [MIN_STEPS] [TIMEOUT_S]");
  process.exit(2);
}
const minSteps = Number(minStepsArg ?? 20);
const timeoutMs = 1000 * Number(timeoutArg ?? 300);

const withoutWebGpu = process.env.NO_WEBGPU === "1";
const webgpuArgs = withoutWebGpu
  ? ["--disable-features=WebGPU"]
  : [
      "--enable-unsafe-webgpu",
      "--use-webgpu-adapter=swiftshader",
      "--enable-gpu",
      "--enable-features=Vulkan",
      "--use-vulkan=swiftshader",
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
      "--ignore-gpu-blocklist",
    ];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // WebGPU on SwiftShader (Dawn's software Vulkan). The compositor must run on SwiftShader's
  // Vulkan too: on its default (GL) path the canvas's swap-chain image cannot be shared with
  // it, and the GPU process loses the device at the first presented frame.
  args: [
    "--no-sandbox",
    ...webgpuArgs,
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
const console_lines = [];
page.on("console", (m) => console_lines.push(`${m.type()}: ${m.text()}`));
page.on("pageerror", (e) => console_lines.push(`pageerror: ${e.message}`));

let result = null;
let failure = null;
try {
  await page.goto(url);
  const started = Date.now();
  for (;;) {
    const state = await page.evaluate(() => ({
      stats: window.clampStats ?? null,
      status: document.getElementById("status")?.textContent ?? "",
      statusClass: document.getElementById("status")?.className ?? "",
    }));
    if (state.statusClass === "error") {
      if (withoutWebGpu) result = { no_webgpu_message: state.status };
      else failure = `the page says: ${state.status}`;
      break;
    }
    if (!withoutWebGpu && state.stats && state.stats.steps >= minSteps) {
      result = state.stats;
      break;
    }
    if (Date.now() - started > timeoutMs) {
      failure = `no ${minSteps} steps within ${timeoutMs / 1000} s (stats: ${JSON.stringify(state.stats)}, status: "${state.status}")`;
      break;
    }
    await page.waitForTimeout(1000);
  }
  await page.screenshot({ path: shot });
} finally {
  await browser.close();
  // The page's console beside the screenshot (repeated lines once, with their count).
  const counted = [];
  for (const line of console_lines) {
    const last = counted[counted.length - 1];
    if (last && last.line === line) last.count += 1;
    else counted.push({ line, count: 1 });
  }
  writeFileSync(
    shot.replace(/\.png$/, "") + ".console.txt",
    counted.map((c) => (c.count > 1 ? `[x${c.count}] ` : "") + c.line).join("\n") + "\n",
  );
}
if (failure) {
  console.error(`(the page's console: ${shot.replace(/\.png$/, "")}.console.txt)`);
  console.error(`test-page: ${failure}`);
  process.exit(1);
}
console.log(JSON.stringify(result));
