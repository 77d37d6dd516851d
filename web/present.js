// The last copy of every frame, from wgpu's WebGL2 swap-chain texture to the canvas.
//
// wgpu draws into an sRGB texture and, at presentation, copies it to the canvas with a shader
// that encodes sRGB again with pow() per channel. A GPU does not notice; a software rasterizer
// (llvmpipe, SwiftShader: every page without a GPU) runs each pow as two scalar library
// calls, and on a 960 x 540 canvas that copy took a fifth of the page's two cores (docs/web.md).
// On such a rasterizer the loader hands WebGL an equivalent shader instead: the same encoding
// as a polynomial in x^(1/4) (two square roots and four multiply-adds per channel), which
// lands on the same byte as the exact curve for every 8-bit value (web/check-present.mjs).

// 1.055 x^(1/2.4) - 0.055 for x >= 0.0031308, as a quartic in u = x^(1/4) (least squares on
// 400 Chebyshev points of [0.0031308^(1/4), 1]): within 4.1e-5 of the curve, 0.01 of a byte.
export const ENCODE_COEFFICIENTS = [-0.0648437802, 0.198040777, 1.117347, -0.32937187, 0.0788557997];
// Below this, sRGB's encoding is the straight line 12.92 x.
export const LINEAR_BELOW = 0.0031308;

const glsl = (c) => c.toPrecision(9);
const [c0, c1, c2, c3, c4] = ENCODE_COEFFICIENTS.map(glsl);

export const PRESENT_SHADER = `#version 300 es
precision highp float;
in vec2 uv;
uniform sampler2D present_texture;
out vec4 frag;
vec3 encode_srgb(vec3 x) {
  vec3 u = sqrt(sqrt(x));
  vec3 curve = (((${c4} * u + ${c3}) * u + ${c2}) * u + ${c1}) * u + ${c0};
  return mix(12.92 * x, curve, step(vec3(${LINEAR_BELOW}), x));
}
void main() {
  vec4 color = texture(present_texture, uv);
  frag = vec4(encode_srgb(color.rgb), color.a);
}
`;

// wgpu's presentation shader, told apart by its names (its sampler and its function).
export function isWgpuPresentShader(source) {
  return source.includes("uniform sampler2D present_texture;") && source.includes("linear_to_srgb(");
}

// From now on, WebGL2 compiles PRESENT_SHADER wherever wgpu hands it its presentation shader;
// `replaced()` is called each time (the page reports it, and its test checks it happened).
export function usePolynomialPresent(replaced) {
  const proto = globalThis.WebGL2RenderingContext?.prototype;
  if (!proto) return;
  const shaderSource = proto.shaderSource;
  proto.shaderSource = function (shader, source) {
    if (isWgpuPresentShader(source)) {
      replaced();
      return shaderSource.call(this, shader, PRESENT_SHADER);
    }
    return shaderSource.call(this, shader, source);
  };
}
