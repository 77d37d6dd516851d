// Contact lines and the unit-sphere wireframe: plain colored lines, drawn over the spheres, each
// run's moved into its cell of the picture as the sphere shader moves its spheres.

#import bevy_pbr::mesh_view_bindings::view

struct Vertex {
    @location(0) position: vec3<f32>,
    @location(1) color: vec4<f32>,
    // The run's cell, (s, ox, oy, hx): clip (x, y, w) goes to (x s + ox w, y s + oy w), and
    // the cell spans ox +- hx across and oy +- s down.
    @location(2) cell: vec4<f32>,
};

struct VertexOutput {
    @builtin(position) clip_position: vec4<f32>,
    @location(0) color: vec4<f32>,
    // The cell's part of the picture: left, top, right, bottom, as fractions (y down).
    @location(1) @interpolate(flat) bounds: vec4<f32>,
};

@vertex
fn vertex(v: Vertex) -> VertexOutput {
    let clip = view.clip_from_world * vec4<f32>(v.position, 1.0);
    var out: VertexOutput;
    out.clip_position = vec4<f32>(clip.xy * v.cell.x + v.cell.yz * clip.w, clip.zw);
    out.color = v.color;
    out.bounds = vec4<f32>(
        (v.cell.y - v.cell.w + 1.0) * 0.5,
        (1.0 - (v.cell.z + v.cell.x)) * 0.5,
        (v.cell.y + v.cell.w + 1.0) * 0.5,
        (1.0 - (v.cell.z - v.cell.x)) * 0.5,
    );
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    // Nothing of a run outside its cell.
    let uv = (in.clip_position.xy - view.viewport.xy) / view.viewport.zw;
    if (any(uv < in.bounds.xy) || any(uv > in.bounds.zw)) {
        discard;
    }
    return in.color;
}
