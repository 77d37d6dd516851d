// Soft repulsive spheres as camera-facing impostors: every sphere is one quad, all quads are one
// draw call. The fragment stage intersects the view ray with the true sphere, so depth and normal
// are exact per pixel (overlapping spheres cut each other along their real intersection), and a
// rim that grows towards the silhouette makes each sphere read as a soft shell.

#import bevy_pbr::mesh_view_bindings::view

// x: opacity of the shell, y: rim sharpness, z: contact highlight strength, w: unused.
@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> style: vec4<f32>;

struct Vertex {
    @location(0) center: vec3<f32>,
    @location(1) corner: vec2<f32>,
    @location(2) color: vec4<f32>,
    // x: radius, y: highlight (0 plain, 1 hovered, 2 pinned, 3 touching the pinned, 4 dimmed).
    @location(3) sphere: vec2<f32>,
};

struct VertexOutput {
    @builtin(position) clip_position: vec4<f32>,
    @location(0) view_point: vec3<f32>,
    @location(1) view_center: vec3<f32>,
    @location(2) color: vec4<f32>,
    @location(3) sphere: vec2<f32>,
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
    out.clip_position = view.clip_from_view * vec4<f32>(point, 1.0);
    out.view_point = point;
    out.view_center = center;
    out.color = v.color;
    out.sphere = vec2<f32>(radius, v.sphere.y);
    return out;
}

@fragment
fn fragment(in: VertexOutput) -> FragmentOutput {
    let radius = in.sphere.x;
    let highlight = in.sphere.y;
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
    if (disc <= 0.0) {
        discard;
    }
    let t = max(b - sqrt(disc), 0.0);
    let hit = dir * t;
    let normal = (hit - in.view_center) / radius;
    let facing = clamp(dot(normal, -dir), 0.0, 1.0);

    // Head light from above-left of the eye, a soft specular, and a fresnel rim.
    let light = normalize(vec3<f32>(-0.4, 0.6, 1.0));
    let diffuse = 0.45 + 0.55 * max(dot(normal, light), 0.0);
    let half_vector = normalize(light - dir);
    // Powers by repeated squaring: cheap on every rasterizer, software ones included.
    let s1 = max(dot(normal, half_vector), 0.0);
    let s2 = s1 * s1;
    let s4 = s2 * s2;
    let s8 = s4 * s4;
    let s16 = s8 * s8;
    let specular = s16 * s16 * s8 * 0.35;
    let edge_distance = 1.0 - facing;
    let rim = edge_distance * edge_distance * sqrt(edge_distance);

    var base = in.color.rgb;
    var opacity = style.x * (0.35 + 0.65 * rim);
    var edge = vec3<f32>(1.0, 1.0, 1.0) * rim * 0.25;
    if (highlight > 0.5 && highlight < 1.5) {
        // hovered
        edge = vec3<f32>(1.0, 1.0, 1.0) * rim * 0.9;
        opacity = max(opacity, 0.7);
    } else if (highlight > 1.5 && highlight < 2.5) {
        // pinned
        edge = vec3<f32>(1.0, 1.0, 1.0) * rim * 1.4;
        opacity = max(opacity, 0.85);
    } else if (highlight > 2.5 && highlight < 3.5) {
        // touching the pinned sphere
        edge = vec3<f32>(1.0, 0.55, 0.1) * rim * style.z;
        opacity = max(opacity, 0.7);
    } else if (highlight > 3.5) {
        // dimmed while another sphere is pinned
        opacity = opacity * 0.25;
        base = mix(base, vec3<f32>(0.3, 0.3, 0.3), 0.6);
    }
    let rgb = base * diffuse + vec3<f32>(specular) + edge;

    let clip = view.clip_from_view * vec4<f32>(hit, 1.0);
    var out: FragmentOutput;
    out.color = vec4<f32>(rgb, clamp(opacity * in.color.a * coverage, 0.0, 1.0));
    out.depth = clip.z / clip.w;
    return out;
}
