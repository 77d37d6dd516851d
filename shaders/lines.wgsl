// Contact lines and the unit-sphere wireframe: plain colored lines, drawn over the spheres, each
// run's moved into its cell of the picture as the sphere shader moves its spheres.

#import bevy_pbr::mesh_view_bindings::view
#import clamp::cells::{cell_bounds, into_cell, outside_cell}

struct Vertex {
    @location(0) position: vec3<f32>,
    @location(1) color: vec4<f32>,
    // The run's cell of the picture (shaders/cells.wgsl).
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
    out.clip_position = into_cell(clip, v.cell);
    out.color = v.color;
    out.bounds = cell_bounds(v.cell);
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    // Nothing of a run outside its cell.
    if (outside_cell(in.clip_position.xy, view.viewport, in.bounds)) {
        discard;
    }
    return in.color;
}
