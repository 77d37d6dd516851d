// Opens the built page in headless Chromium, waits until it has trained, saves a screenshot and
// prints one JSON line of the page's window.clampStats with the loader's choice:
//   {"path": "cpu", "steps": N, "loss_first": a, "loss_last": b, "fps": f, ...}
//
// Usage: node web/test-page.mjs URL SHOT.png [options]
//   --webgpu swiftshader   WebGPU on SwiftShader (software Vulkan); the default
//   --webgpu off           WebGPU switched off (the page then trains on the CPU)
//   --webgl off            WebGL switched off too (the page must say what is missing)
//   --steps N              wait for N training steps (default 20)
//   --seconds S            and for S seconds after the first step (default 0)
//   --timeout T            give up after T seconds (default 300)
//   --loader-only          stop once the loader has chosen a build
import { writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, shot, ...rest] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node web/test-page.mjs URL SHOT.png [--webgpu swiftshader|off] [--steps N] [--seconds S] [--timeout T]");
  process.exit(2);
}
const options = { webgpu: "swiftshader", webgl: "on", steps: 20, seconds: 0, timeout: 300, loaderOnly: false };
for (let k = 0; k < rest.length; k++) {
  const flag = rest[k];
  if (flag === "--loader-only") options.loaderOnly = true;
  else if (["--webgpu", "--webgl"].includes(flag)) options[flag.slice(2)] = rest[++k];
  else if (["--steps", "--seconds", "--timeout"].includes(flag)) options[flag.slice(2)] = Number(rest[++k]);
  else {
    console.error(`test-page: unknown option ${flag}`);
    process.exit(2);
  }
}

// Software stands in for a GPU. With WebGPU on, SwiftShader (Dawn's software Vulkan) serves
// WebGPU, and the compositor must run on SwiftShader's Vulkan too: on its default (GL) path
// the canvas's swap-chain image cannot be shared with it, and the GPU process loses the
// device at the first presented frame. With WebGPU off, WebGL2 goes through ANGLE to the
// machine's own OpenGL ES, Mesa's llvmpipe (twice SwiftShader's frame rate here).
const webgpuArgs = options.webgpu === "off"
  ? ["--use-angle=gles-egl", "--disable-features=WebGPU"]
  : [
      "--use-angle=swiftshader",
      "--enable-unsafe-swiftshader",
      "--enable-unsafe-webgpu",
      "--use-webgpu-adapter=swiftshader",
      "--enable-features=Vulkan",
      "--use-vulkan=swiftshader",
    ];
const webglArgs = options.webgl === "off" ? ["--disable-webgl", "--disable-webgl2"] : [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--enable-gpu",
    "--ignore-gpu-blocklist",
    ...webgpuArgs,
    ...webglArgs,
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
const page = await context.newPage();
const console_lines = [];
// Anything that breaks the page after it started (a trap in the app, the browser taking the
// drawing context away) fails the test, with its time since navigation.
const troubles = [];
let navigatedAt = Date.now();
const sinceStart = () => ((Date.now() - navigatedAt) / 1000).toFixed(1);
page.on("console", (m) => {
  console_lines.push(`${m.type()}: ${m.text()}`);
  // Bevy's log reaches the console as `log` lines with the level inside (`%cERROR%c`); the
  // browser's own errors come as `error` lines.
  const failed = m.type() === "error" || /%cERROR%c/.test(m.text());
  if (failed || /CONTEXT_LOST|context lost|device lost/i.test(m.text())) troubles.push(`${sinceStart()} s: ${m.text()}`);
});
page.on("pageerror", (e) => {
  console_lines.push(`pageerror: ${e.message}`);
  troubles.push(`${sinceStart()} s: ${e.message}`);
});

let result = null;
let failure = null;
try {
  navigatedAt = Date.now();
  await page.goto(url);
  const started = Date.now();
  let firstStepAt = null;
  let atFirstStep = null;
  for (;;) {
    const state = await page.evaluate(() => ({
      stats: window.clampStats ?? null,
      loader: window.clampLoader ?? null,
      status: document.getElementById("status")?.textContent ?? "",
      statusClass: document.getElementById("status")?.className ?? "",
    }));
    if (state.statusClass === "error") {
      result = { loader: state.loader, message: state.status };
      break;
    }
    if (options.loaderOnly && state.loader) {
      result = { loader: state.loader };
      break;
    }
    const steps = state.stats?.steps ?? 0;
    if (steps > 0 && firstStepAt === null) {
      firstStepAt = Date.now();
      atFirstStep = state.stats;
    }
    const ranLongEnough = firstStepAt !== null && Date.now() - firstStepAt >= 1000 * options.seconds;
    if (state.stats && steps >= options.steps && ranLongEnough) {
      // Frames and steps per second from the first step on (the page's own `fps` counts the
      // loading too).
      const seconds = (Date.now() - firstStepAt) / 1000;
      result = {
        ...state.stats,
        page_fps: state.stats.fps,
        fps: (state.stats.frames - atFirstStep.frames) / seconds,
        steps_per_sec: (state.stats.steps - atFirstStep.steps) / seconds,
        seconds_since_first_step: seconds,
        loader: state.loader,
        troubles: troubles.length,
        first_trouble: troubles[0] ?? null,
      };
      break;
    }
    if (Date.now() - started > 1000 * options.timeout) {
      failure = `no ${options.steps} steps within ${options.timeout} s (stats: ${JSON.stringify(state.stats)}, status: "${state.status}")`;
      break;
    }
    await page.waitForTimeout(250);
  }
  const png = await page.screenshot({ path: shot });
  // One pixel of the screenshot near the picture's top-right corner, where only the scene's
  // background shows: what the page's last copy to the canvas made of a known color.
  if (result?.steps !== undefined) {
    result.background_pixel = await page.evaluate(async (data) => {
      const canvas = document.getElementById("clamp").getBoundingClientRect();
      const image = new Image();
      image.src = "data:image/png;base64," + data;
      await image.decode();
      const board = document.createElement("canvas");
      board.width = image.width;
      board.height = image.height;
      const context = board.getContext("2d");
      context.drawImage(image, 0, 0);
      const x = Math.round(canvas.right - 6), y = Math.round(canvas.top + 6);
      return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
    }, png.toString("base64"));
  }
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
