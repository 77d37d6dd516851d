// Soft repulsive spheres as camera-facing impostors: every sphere is one quad, all quads are one
// draw call. The fragment stage intersects the view ray with the true sphere, so depth and normal
// are exact per pixel (overlapping spheres cut each other along their real intersection), and a
// rim that grows towards the silhouette makes each sphere read as a soft shell.

#import bevy_pbr::mesh_view_bindings::view
#import clamp::cells::{cell_bounds, into_cell, outside_cell}

// x: opacity of the shell, y: rim sharpness, z: contact highlight strength, w: unused.
@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> style: vec4<f32>;

struct Vertex {
    @location(0) center: vec3<f32>,
    @location(1) corner: vec2<f32>,
    @location(2) color: vec4<f32>,
    // x: radius, y: highlight (0 plain, 1 hovered, 2 pinned, 3 touching the pinned, 4 dimmed).
    @location(3) sphere: vec2<f32>,
    // The run's cell of the picture (shaders/cells.wgsl).
    @location(4) cell: vec4<f32>,
};

struct VertexOutput {
    @builtin(position) clip_position: vec4<f32>,
    @location(0) view_point: vec3<f32>,
    // Per-sphere values are flat: the same at all four corners, so nothing to interpolate.
    @location(1) @interpolate(flat) view_center: vec3<f32>,
    // rgb: the shell's color; a: opacity factor (dimmed spheres fade).
    @location(2) @interpolate(flat) base: vec4<f32>,
    // rgb: rim color times its strength; a: the least opacity (highlighted spheres stand out).
    @location(3) @interpolate(flat) edge: vec4<f32>,
    // x: radius, y: 1 / radius.
    @location(4) @interpolate(flat) radius: vec2<f32>,
    // The cell's part of the picture: left, top, right, bottom, as fractions (y down).
    @location(5) @interpolate(flat) bounds: vec4<f32>,
};

struct FragmentOutput {
    @location(0) color: vec4<f32>,
    @builtin(frag_depth) depth: f32,
};

@vertex
fn vertex(v: Vertex) -> VertexOutput {
    let center = (view.view_from_world * vec4<f32>(v.center, 1.0)).xyz;
    let radius = max(v.sphere.x, 1e-5);
    // Seen from distance D, a sphere's outline spans r D / sqrt(D^2 - r^2) on the plane through
    // its center: grow the quad by that much so the silhouette is never clipped.
    let d2 = dot(center, center);
    let grow = sqrt(d2 / max(d2 - radius * radius, 1e-4 * d2));
    let half_size = radius * min(grow, 8.0) * 1.02;
    let point = center + vec3<f32>(v.corner * half_size, 0.0);
    var out: VertexOutput;
    // Into the run's cell: a shift (and for quarters a halving) in clip space, so each cell
    // shows what a camera of the cell's own aspect would.
    let clip = view.clip_from_view * vec4<f32>(point, 1.0);
    out.clip_position = into_cell(clip, v.cell);
    out.bounds = cell_bounds(v.cell);
    out.view_point = point;
    out.view_center = center;
    out.radius = vec2<f32>(radius, 1.0 / radius);

    // The highlight state decides colors once per sphere here, not once per pixel.
    let highlight = v.sphere.y;
    var base = v.color.rgb;
    var fade = 1.0;
    var edge = vec4<f32>(0.25, 0.25, 0.25, 0.0);
    if (highlight > 0.5 && highlight < 1.5) {
        // hovered
        edge = vec4<f32>(0.9, 0.9, 0.9, 0.7);
    } else if (highlight > 1.5 && highlight < 2.5) {
        // pinned
        edge = vec4<f32>(1.4, 1.4, 1.4, 0.85);
    } else if (highlight > 2.5 && highlight < 3.5) {
        // touching the pinned sphere
        edge = vec4<f32>(vec3<f32>(1.0, 0.55, 0.1) * style.z, 0.7);
    } else if (highlight > 3.5) {
        // dimmed while another sphere is pinned
        fade = 0.25;
        base = mix(base, vec3<f32>(0.3, 0.3, 0.3), 0.6);
    }
    out.base = vec4<f32>(base, fade * v.color.a);
    out.edge = edge;
    return out;
}

// Head light from above-left of the eye. The specular half vector uses a distant viewer
// (the view direction taken as the axis), as classic fixed-function lighting does: one
// normalisation fewer per pixel, and no visible difference at these sizes.
const LIGHT: vec3<f32> = vec3<f32>(-0.3244428, 0.4866643, 0.8111071);
const HALF_VECTOR: vec3<f32> = vec3<f32>(-0.1704712, 0.2557069, 0.9516058);

@fragment
fn fragment(in: VertexOutput) -> FragmentOutput {
    let radius = in.radius.x;
    // Ray from the eye (the origin of view space) through this pixel of the quad.
    let dir = normalize(in.view_point);
    let b = dot(dir, in.view_center);
    let c = dot(in.view_center, in.view_center) - radius * radius;
    let disc = b * b - c;
    // Coverage of the silhouette over about one pixel, so outlines stay smooth even when the
    // spheres are drawn below the window's resolution (taken before the discard: derivatives
    // need every pixel of the quad).
    let reach = sqrt(max(disc, 0.0));
    let coverage = clamp(reach / max(fwidth(reach), 1e-6), 0.0, 1.0);
    // Outside the silhouette, or outside the run's cell: nothing.
    if (disc <= 0.0 || outside_cell(in.clip_position.xy, view.viewport, in.bounds)) {
        discard;
    }
    let hit = dir * max(b - reach, 0.0);
    let normal = (hit - in.view_center) * in.radius.y;
    let facing = clamp(-dot(normal, dir), 0.0, 1.0);

    let diffuse = 0.45 + 0.55 * max(dot(normal, LIGHT), 0.0);
    // Powers by repeated squaring: cheap on every rasterizer, software ones included.
    let s1 = max(dot(normal, HALF_VECTOR), 0.0);
    let s2 = s1 * s1;
    let s4 = s2 * s2;
    let s8 = s4 * s4;
    let s16 = s8 * s8;
    let specular = s16 * s16 * s8 * 0.35;
    // A fresnel-like rim that grows towards the silhouette: what reads as a soft shell.
    let edge_distance = 1.0 - facing;
    let rim = edge_distance * edge_distance * sqrt(edge_distance);

    // Below full opacity a sphere is a translucent shell (clearer at its rim); at full opacity
    // it is solid, so overlapping classes keep their own colors instead of blending.
    let shell = style.x * (0.35 + 0.65 * rim);
    let opacity = max(select(shell, 1.0, style.x >= 0.999) * in.base.a, in.edge.a);
    let rgb = in.base.rgb * diffuse + vec3<f32>(specular) + in.edge.rgb * rim;

    // Only depth is needed from the projection: two rows, not the whole matrix.
    let m = view.clip_from_view;
    let clip_z = m[0].z * hit.x + m[1].z * hit.y + m[2].z * hit.z + m[3].z;
    let clip_w = m[0].w * hit.x + m[1].w * hit.y + m[2].w * hit.z + m[3].w;
    var out: FragmentOutput;
    out.color = vec4<f32>(rgb, clamp(opacity * coverage, 0.0, 1.0));
    out.depth = clip_z / clip_w;
    return out;
}
