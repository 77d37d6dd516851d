// Checks the loader's presentation shader (web/present.js) against sRGB's exact encoding: for
// every 8-bit value b, the texture's decoded value, encoded by the shader's polynomial in
// single precision, must round back to b; and over [0, 1] the polynomial must stay within
// 1e-4 of the exact curve (a fortieth of a byte). Prints one line; exits 1 on a failure.
import { ENCODE_COEFFICIENTS, LINEAR_BELOW, PRESENT_SHADER, isWgpuPresentShader } from "./present.js";

const f = Math.fround;
const decode = (s) => (s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4);
const encodeExact = (x) => (x < 0.0031308 ? 12.92 * x : 1.055 * x ** (1 / 2.4) - 0.055);
// The shader's arithmetic, in single precision as the GPU does it.
function encodeShader(x) {
  x = f(x);
  if (x < f(LINEAR_BELOW)) return f(f(12.92) * x);
  const u = f(Math.sqrt(f(Math.sqrt(x))));
  let acc = f(ENCODE_COEFFICIENTS[ENCODE_COEFFICIENTS.length - 1]);
  for (let k = ENCODE_COEFFICIENTS.length - 2; k >= 0; k--) acc = f(f(acc * u) + f(ENCODE_COEFFICIENTS[k]));
  return acc;
}

const problems = [];
let worstByte = 0;
for (let b = 0; b < 256; b++) {
  const out = encodeShader(decode(b / 255)) * 255;
  worstByte = Math.max(worstByte, Math.abs(out - b));
  if (Math.round(out) !== b) problems.push(`byte ${b} comes out as ${out.toFixed(3)}`);
}
let worstCurve = 0;
for (let k = 0; k <= 200000; k++) {
  const x = k / 200000;
  worstCurve = Math.max(worstCurve, Math.abs(encodeShader(x) - encodeExact(x)));
}
if (worstCurve > 1e-4) problems.push(`the polynomial is ${worstCurve} from sRGB's curve`);
for (const c of ENCODE_COEFFICIENTS) {
  if (!PRESENT_SHADER.includes(c.toPrecision(9))) problems.push(`the shader lacks the coefficient ${c}`);
}
if (isWgpuPresentShader(PRESENT_SHADER)) problems.push("the replacement would be replaced again");
console.log(JSON.stringify({ worst_byte_error: +worstByte.toFixed(4), worst_curve_error: worstCurve, problems }));
if (problems.length) process.exit(1);
