//! Cell list for a cubic periodic box: particles are binned into cells at least one interaction
//! range wide, so every interacting pair sits in the same or adjacent cells and one sweep over
//! cells costs O(N) instead of O(N^2).

/// Particles binned by cell with a counting sort; positions and diameters are copied in cell
/// order so the inner loops read contiguous memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct CellList {
    per_side: [usize; 3],
    /// Slots `start[c]..start[c + 1]` hold the particles of cell `c`.
    start: Vec<usize>,
    /// Particle index in each slot.
    members: Vec<usize>,
    sorted_positions: Vec<f64>,
    sorted_diameters: Vec<f64>,
    cell_of: Vec<usize>,
    /// The half of the neighbour offsets that come "after" a cell (4 in 2D, 13 in 3D), so each
    /// pair of adjacent cells is visited once.
    forward: Vec<[isize; 3]>,
    box_len: f64,
}

impl CellList {
    /// Cells per side when cells must be at least `cutoff` wide.
    pub(crate) fn cells_per_side(box_len: f64, cutoff: f64) -> usize {
        (box_len / cutoff).floor() as usize
    }

    /// Bins `positions` (in `[0, box_len)`, `dim` per particle). Needs at least 3 cells per side,
    /// otherwise the offsets +1 and -1 would reach the same cell and pairs would be counted twice.
    pub(crate) fn rebuild(
        &mut self,
        positions: &[f64],
        diameters: &[f64],
        dim: usize,
        box_len: f64,
        cutoff: f64,
    ) {
        let m = Self::cells_per_side(box_len, cutoff);
        debug_assert!(m >= 3, "cell list needs at least 3 cells per side");
        let per_side = [m, m, if dim == 3 { m } else { 1 }];
        if per_side != self.per_side {
            self.per_side = per_side;
            self.forward = forward_offsets(dim);
        }
        self.box_len = box_len;
        let n = diameters.len();
        let cell_count = per_side.iter().product::<usize>();
        let inverse_width = m as f64 / box_len;
        self.cell_of.clear();
        self.cell_of.extend(positions.chunks_exact(dim).map(|p| {
            let mut index = 0;
            for k in (0..dim).rev() {
                let c = ((p[k] * inverse_width) as usize).min(m - 1);
                index = index * m + c;
            }
            index
        }));
        self.start.clear();
        self.start.resize(cell_count + 1, 0);
        for &c in &self.cell_of {
            self.start[c + 1] += 1;
        }
        for c in 0..cell_count {
            self.start[c + 1] += self.start[c];
        }
        let mut fill = self.start.clone();
        self.members.resize(n, 0);
        self.sorted_positions.resize(n * dim, 0.0);
        self.sorted_diameters.resize(n, 0.0);
        for (i, &c) in self.cell_of.iter().enumerate() {
            let slot = fill[c];
            fill[c] += 1;
            self.members[slot] = i;
            self.sorted_diameters[slot] = diameters[i];
            self.sorted_positions[slot * dim..slot * dim + dim]
                .copy_from_slice(&positions[i * dim..i * dim + dim]);
        }
    }

    /// Calls `visit(i, j, r_i - r_j, r, sigma_ij)` once for each overlapping pair, as of the
    /// last [`CellList::rebuild`] (with `dim` = `C`).
    pub(crate) fn for_each_overlap<const C: usize>(
        &self,
        mut visit: impl FnMut(usize, usize, [f64; 3], f64, f64),
    ) {
        let (points, diam) = (
            self.sorted_positions.as_chunks::<C>().0,
            &self.sorted_diameters,
        );
        let [mx, my, mz] = self.per_side;
        // For each particle of a cell, scan slot ranges: the rest of its own cell, then the
        // forward neighbours, each with the periodic image shift that brings it next to this
        // cell (so no minimum-image test per pair). One flat loop keeps the pair test inlined.
        let mut ranges = [(0, 0, [0.0; 3]); 14];
        let ranges = &mut ranges[..=self.forward.len()];
        for cz in 0..mz {
            for cy in 0..my {
                for cx in 0..mx {
                    let cell = (cz * my + cy) * mx + cx;
                    for (range, offset) in ranges[1..].iter_mut().zip(&self.forward) {
                        let mut shift = [0.0; 3];
                        let mut coords = [0; 3];
                        for (k, (&c, &m)) in [cx, cy, cz].iter().zip(&self.per_side).enumerate() {
                            let moved = c as isize + offset[k];
                            coords[k] = if moved < 0 {
                                shift[k] = -self.box_len;
                                m - 1
                            } else if moved as usize >= m {
                                shift[k] = self.box_len;
                                0
                            } else {
                                moved as usize
                            };
                        }
                        let other = (coords[2] * my + coords[1]) * mx + coords[0];
                        *range = (self.start[other], self.start[other + 1], shift);
                    }
                    for a in self.start[cell]..self.start[cell + 1] {
                        ranges[0] = (a + 1, self.start[cell + 1], [0.0; 3]);
                        let da = diam[a];
                        for &(lo, hi, shift) in ranges.iter() {
                            // Position of `a` relative to the neighbour cell's image.
                            let pa: [f64; C] = std::array::from_fn(|k| points[a][k] - shift[k]);
                            let others = points[lo..hi].iter().zip(&diam[lo..hi]);
                            for (b, (pb, &db)) in (lo..).zip(others) {
                                let sigma = 0.5 * (da + db);
                                if let Some((delta, r)) = overlap(&pa, pb, sigma, None) {
                                    visit(self.members[a], self.members[b], delta, r, sigma);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Separation `a - b` (minimum image when `box_len` is given; positions must lie in
/// `[0, box_len)`) and its length, if shorter than `sigma` and non-zero.
#[inline(always)]
pub(crate) fn overlap<const C: usize>(
    a: &[f64; C],
    b: &[f64; C],
    sigma: f64,
    box_len: Option<f64>,
) -> Option<([f64; 3], f64)> {
    let mut delta = [0.0; 3];
    let mut r2 = 0.0;
    for k in 0..C {
        let mut x = a[k] - b[k];
        if let Some(len) = box_len {
            // Both coordinates lie in [0, L), so one shift gives the minimum image.
            if x > 0.5 * len {
                x -= len;
            } else if x < -0.5 * len {
                x += len;
            }
        }
        delta[k] = x;
        r2 += x * x;
    }
    (r2 < sigma * sigma && r2 > 0.0).then(|| (delta, r2.sqrt()))
}

/// Neighbour offsets that come "after" (0, 0, 0) in (z, y, x) order: 4 in 2D, 13 in 3D.
fn forward_offsets(dim: usize) -> Vec<[isize; 3]> {
    let z_range = if dim == 3 { -1..=1 } else { 0..=0 };
    let mut offsets = Vec::new();
    for dz in z_range {
        for dy in -1..=1 {
            for dx in -1..=1 {
                if (dz, dy, dx) > (0, 0, 0) {
                    offsets.push([dx, dy, dz]);
                }
            }
        }
    }
    offsets
}
