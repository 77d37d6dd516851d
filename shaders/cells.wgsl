// A run's cell of the picture, shared by the sphere and the line shaders. One camera draws every
// run; a cell (s, ox, oy, hx) moves clip (x, y, w) to (x s + ox w, y s + oy w) and spans ox +- hx
// across and oy +- s down, so each cell shows what a camera of its own aspect would.

#define_import_path clamp::cells

// `clip` moved into `cell`.
fn into_cell(clip: vec4<f32>, cell: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(clip.xy * cell.x + cell.yz * clip.w, clip.zw);
}

// The cell's part of the picture: left, top, right, bottom, as fractions (y down).
fn cell_bounds(cell: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        (cell.y - cell.w + 1.0) * 0.5,
        (1.0 - (cell.z + cell.x)) * 0.5,
        (cell.y + cell.w + 1.0) * 0.5,
        (1.0 - (cell.z - cell.x)) * 0.5,
    );
}

// Whether the pixel at `frag` (framebuffer coordinates) of a `viewport` lies outside `bounds`.
fn outside_cell(frag: vec2<f32>, viewport: vec4<f32>, bounds: vec4<f32>) -> bool {
    let uv = (frag - viewport.xy) / viewport.zw;
    return any(uv < bounds.xy) || any(uv > bounds.zw);
}
