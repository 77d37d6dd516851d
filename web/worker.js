// The CPU page's training thread. The page posts its compiled module (no second download) and
// the start message first, then commands; this instantiates the module here and hands each
// message to the app's worker entry points (src/viewer/worker.rs).
import init, { worker_start, worker_command } from "./clamp.js";

let started = false;
const early = [];
self.onmessage = async ({ data }) => {
  if (data && data.module) {
    await init({ module_or_path: data.module });
    worker_start(data.start);
    started = true;
    for (const command of early.splice(0)) worker_command(command);
  } else if (started) {
    worker_command(data);
  } else {
    early.push(data);
  }
};
