//! The AVX-512 VNNI accumulation of an int8 grouped matmul over an NZ weight, as MLIR text
//! shared by the fused op's kernel and the grouped matmul's: `vpdpbusd` dot products of 4 int8
//! values per int32 lane. x is offset to u8 (x + 128, a sign-bit flip) and the offset is taken
//! back with 128 * colsum(W). Each (group, 32-column block) of the weight is repacked once, for
//! all its rows, so that each lane holds one column's 4 consecutive weights; rows are then
//! processed four at a time (register tiling), the rest one by one. The integer results are
//! exactly those of the portable loop.
//!
//! Names the caller provides in scope: `%g`, `%block`, `%start`, `%end`, `%p` (the single-row
//! loop), `%c0`, `%c1`, `%c16`, and `%packed` (from [`alloc_packed`]). Names defined here:
//! `%correction` ([`pack`]) and `%acc` ([`accumulate_row`], the 32 int32 sums of row `%p`).

use std::fmt::Write;

/// The operands the VNNI code reads.
pub struct VnniNames<'a> {
    /// SSA name of the NZ weight memref, e.g. `%w`.
    pub weight: &'a str,
    /// Its memref type.
    pub weight_type: String,
    /// SSA name of the x memref (m, k).
    pub x: &'a str,
    /// Its memref type.
    pub x_type: String,
    /// k.
    pub k: u64,
}

/// `%packed = memref.alloc()` of one (group, block)'s repacked weight: (ceil(k/4), 128) bytes.
pub fn alloc_packed(s: &mut String, k: u64) {
    let _ = writeln!(s, "      %packed = memref.alloc() : memref<{}x128xi8>", k.div_ceil(4));
}

/// Frees what [`alloc_packed`] allocated.
pub fn dealloc_packed(s: &mut String, k: u64) {
    let _ = writeln!(s, "      memref.dealloc %packed : memref<{}x128xi8>", k.div_ceil(4));
}

/// Repacks the weight of (`%g`, `%block`) into `%packed` and defines `%correction`.
pub fn pack(s: &mut String, names: &VnniNames<'_>) {
    let k = names.k;
    let vi = "vector<32xi32>";
    // Repack this (group, block) of the NZ weight once for all its rows: every 4 rows of k
    // interleaved so that each int32 lane holds one column's 4 weights (vpdpbusd's layout),
    // and the column sums that take back the u8 offset of x.
    let k4 = k.div_ceil(4);
    let interleave: Vec<String> = (0..32).flat_map(|c| [c, 32 + c]).map(|i| i.to_string()).collect();
    let pick = |from: usize| -> String {
        (from..from + 16)
            .flat_map(|c| [2 * c, 2 * c + 1, 64 + 2 * c, 64 + 2 * c + 1])
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(s, "        %cK4p = arith.constant {} : index", k4 * 4);
    let _ = writeln!(s, "        %c4p = arith.constant 4 : index");
    let _ = writeln!(s, "        %c64p = arith.constant 64 : index");
    let _ = writeln!(s, "        %cs0 = arith.constant dense<0> : {vi}");
    let _ = writeln!(s, "        %cpad = arith.constant 0 : i8");
    let _ = writeln!(
        s,
        "        %colsum = scf.for %kq = %c0 to %cK4p step %c4p iter_args(%cs = %cs0) -> ({vi}) {{"
    );
    let _ = writeln!(s, "          %pk1 = arith.divui %kq, %c16 : index");
    let _ = writeln!(s, "          %pk0 = arith.remui %kq, %c16 : index");
    let _ = writeln!(
        s,
        "          %cs_next = scf.for %r = %c0 to %c4p step %c1 iter_args(%acc_cs = %cs) -> ({vi}) {{"
    );
    let _ = writeln!(s, "            %kr = arith.addi %pk0, %r : index");
    let _ = writeln!(
        s,
        "            %row = vector.transfer_read {w}[%g, %block, %pk1, %kr, %c0], %cpad {{in_bounds = [true]}} : {}, vector<32xi8>",
        &names.weight_type,
        w = names.weight
    );
    let _ = writeln!(s, "            %row32 = arith.extsi %row : vector<32xi8> to {vi}");
    let _ = writeln!(s, "            %sum_r = arith.addi %acc_cs, %row32 : {vi}");
    let _ = writeln!(s, "            scf.yield %sum_r : {vi}");
    let _ = writeln!(s, "          }}");
    for r in 0..4 {
        let _ = writeln!(s, "          %pr{r}i = arith.constant {r} : index");
        let _ = writeln!(s, "          %pkr{r} = arith.addi %pk0, %pr{r}i : index");
        let _ = writeln!(
            s,
            "          %pr{r} = vector.transfer_read {w}[%g, %block, %pk1, %pkr{r}, %c0], %cpad {{in_bounds = [true]}} : {}, vector<32xi8>",
            &names.weight_type,
            w = names.weight
        );
    }
    let _ = writeln!(
        s,
        "          %ps01 = vector.shuffle %pr0, %pr1 [{}] : vector<32xi8>, vector<32xi8>",
        interleave.join(", ")
    );
    let _ = writeln!(
        s,
        "          %ps23 = vector.shuffle %pr2, %pr3 [{}] : vector<32xi8>, vector<32xi8>",
        interleave.join(", ")
    );
    let _ = writeln!(
        s,
        "          %plo = vector.shuffle %ps01, %ps23 [{}] : vector<64xi8>, vector<64xi8>",
        pick(0)
    );
    let _ = writeln!(
        s,
        "          %phi = vector.shuffle %ps01, %ps23 [{}] : vector<64xi8>, vector<64xi8>",
        pick(16)
    );
    let _ = writeln!(s, "          %pkp = arith.divui %kq, %c4p : index");
    let _ = writeln!(
        s,
        "          vector.transfer_write %plo, %packed[%pkp, %c0] {{in_bounds = [true]}} : vector<64xi8>, memref<{k4}x128xi8>"
    );
    let _ = writeln!(
        s,
        "          vector.transfer_write %phi, %packed[%pkp, %c64p] {{in_bounds = [true]}} : vector<64xi8>, memref<{k4}x128xi8>"
    );
    let _ = writeln!(s, "          scf.yield %cs_next : {vi}");
    let _ = writeln!(s, "        }}");
    let _ = writeln!(s, "        %c128v = arith.constant dense<128> : {vi}");
    let _ = writeln!(s, "        %correction = arith.muli %colsum, %c128v : {vi}");
}

/// The 32 int32 sums of row `%p` as `%acc` (`vector<32xi32>`).
pub fn accumulate_row(s: &mut String, names: &VnniNames<'_>) {
    let k = names.k;
    let vi = "vector<32xi32>";
    // Four k at a time with vpdpbusd (u8 x s8 dot products of 4 bytes per int32 lane):
    // x is offset to u8 (x + 128, a sign-bit flip) and the offset is taken back with
    // 128 * colsum(W), computed per (group, block) before the rows. Exact in int32.
    // Four NZ rows (k .. k+3, the same 16-row block) are interleaved so that each lane
    // holds one column's 4 weights.
    let _ = writeln!(s, "          %acc0 = arith.constant dense<0> : vector<16xi32>");
    let _ = writeln!(s, "          %pad8 = arith.constant 0 : i8");
    let _ = writeln!(s, "          %c4 = arith.constant 4 : index");
    let _ = writeln!(s, "          %cK4 = arith.constant {} : index", k.div_ceil(4) * 4);
    let _ = writeln!(s, "          %flip = arith.constant dense<-128> : vector<4xi8>");
    let _ = writeln!(
        s,
        "          %vacc:2 = scf.for %kq = %c0 to %cK4 step %c4 iter_args(%a0 = %acc0, %a1 = %acc0) -> (vector<16xi32>, vector<16xi32>) {{"
    );
    let _ = writeln!(
        s,
        "            %xv = vector.transfer_read {x}[%p, %kq], %pad8 : {}, vector<4xi8>",
        &names.x_type,
        x = names.x
    );
    let _ = writeln!(s, "            %xu = arith.xori %xv, %flip : vector<4xi8>");
    let _ = writeln!(
        s,
        "            %x32 = vector.bitcast %xu : vector<4xi8> to vector<1xi32>"
    );
    let _ = writeln!(s, "            %xs = vector.extract %x32[0] : i32 from vector<1xi32>");
    let _ = writeln!(s, "            %xb32 = vector.broadcast %xs : i32 to vector<16xi32>");
    let _ = writeln!(
        s,
        "            %xb = vector.bitcast %xb32 : vector<16xi32> to vector<64xi8>"
    );
    let _ = writeln!(s, "            %kp = arith.divui %kq, %c4 : index");
    let _ = writeln!(
        s,
        "            %blo = vector.transfer_read %packed[%kp, %c0], %pad8 {{in_bounds = [true]}} : memref<{}x128xi8>, vector<64xi8>",
        k.div_ceil(4)
    );
    let _ = writeln!(s, "            %c64 = arith.constant 64 : index");
    let _ = writeln!(
        s,
        "            %bhi = vector.transfer_read %packed[%kp, %c64], %pad8 {{in_bounds = [true]}} : memref<{}x128xi8>, vector<64xi8>",
        k.div_ceil(4)
    );
    let _ = writeln!(
        s,
        "            %n0 = llvm.call_intrinsic \"llvm.x86.avx512.vpdpbusd.512\"(%a0, %xb, %blo) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>"
    );
    let _ = writeln!(
        s,
        "            %n1 = llvm.call_intrinsic \"llvm.x86.avx512.vpdpbusd.512\"(%a1, %xb, %bhi) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>"
    );
    let _ = writeln!(s, "            scf.yield %n0, %n1 : vector<16xi32>, vector<16xi32>");
    let _ = writeln!(s, "          }}");
    let concat: Vec<String> = (0..32).map(|i| i.to_string()).collect();
    let _ = writeln!(
        s,
        "          %acc_off = vector.shuffle %vacc#0, %vacc#1 [{}] : vector<16xi32>, vector<16xi32>",
        concat.join(", ")
    );
    let _ = writeln!(s, "          %acc = arith.subi %acc_off, %correction : {vi}");
}

/// Turns the single-row loop emitted at `rows_loop_at` (its body from `body_at`, starting with
/// [`accumulate_row`]) into a 4-row tiled loop followed by the single-row loop for the rest.
/// The per-row epilogue after `%acc` is repeated for each row of a tile, renamed.
pub fn tile_rows(s: &mut String, rows_loop_at: usize, body_at: usize, names: &VnniNames<'_>) {
    let k = names.k;
    let vi = "vector<32xi32>";
    // Four rows at a time share each packed weight load; the single-row loop above then
    // handles the remaining rows. The per-row epilogue is the single-row one, renamed.
    let single = s[body_at..].to_string();
    let epilogue_at = single
        .find("%acc = arith.subi %acc_off")
        .and_then(|i| single[i..].find('\n').map(|j| i + j + 1))
        .unwrap_or(0);
    let epilogue = single[epilogue_at..single.rfind("        }").unwrap_or(single.len())].to_string();
    let mut tiled = String::new();
    let _ = writeln!(tiled, "        %rows_in_group = arith.subi %end, %start : index");
    let _ = writeln!(tiled, "        %c4t = arith.constant 4 : index");
    let _ = writeln!(tiled, "        %tiles = arith.divui %rows_in_group, %c4t : index");
    let _ = writeln!(tiled, "        %tiled_rows = arith.muli %tiles, %c4t : index");
    let _ = writeln!(tiled, "        %tile_end = arith.addi %start, %tiled_rows : index");
    let _ = writeln!(tiled, "        scf.for %p4 = %start to %tile_end step %c4t {{");
    for r in 0..4 {
        let _ = writeln!(tiled, "          %tr{r} = arith.constant {r} : index");
        let _ = writeln!(tiled, "          %p_t{r} = arith.addi %p4, %tr{r} : index");
    }
    let _ = writeln!(tiled, "          %tacc0 = arith.constant dense<0> : vector<16xi32>");
    let _ = writeln!(tiled, "          %tpad8 = arith.constant 0 : i8");
    let _ = writeln!(tiled, "          %tc4 = arith.constant 4 : index");
    let _ = writeln!(tiled, "          %tc64 = arith.constant 64 : index");
    let _ = writeln!(tiled, "          %tK4 = arith.constant {} : index", k.div_ceil(4) * 4);
    let _ = writeln!(tiled, "          %tflip = arith.constant dense<-128> : vector<4xi8>");
    let accs: Vec<String> = (0..8).map(|i| format!("%ta{i} = %tacc0")).collect();
    let types = ["vector<16xi32>"; 8].join(", ");
    let _ = writeln!(
        tiled,
        "          %tv:8 = scf.for %kq = %c0 to %tK4 step %tc4 iter_args({}) -> ({types}) {{",
        accs.join(", ")
    );
    let _ = writeln!(tiled, "            %kp = arith.divui %kq, %tc4 : index");
    let _ = writeln!(
        tiled,
        "            %blo = vector.transfer_read %packed[%kp, %c0], %tpad8 {{in_bounds = [true]}} : memref<{}x128xi8>, vector<64xi8>",
        k.div_ceil(4)
    );
    let _ = writeln!(
        tiled,
        "            %bhi = vector.transfer_read %packed[%kp, %tc64], %tpad8 {{in_bounds = [true]}} : memref<{}x128xi8>, vector<64xi8>",
        k.div_ceil(4)
    );
    let mut yields = Vec::new();
    for r in 0..4 {
        let _ = writeln!(
            tiled,
            "            %xv{r} = vector.transfer_read {x}[%p_t{r}, %kq], %tpad8 : {}, vector<4xi8>",
            &names.x_type,
            x = names.x
        );
        let _ = writeln!(tiled, "            %xu{r} = arith.xori %xv{r}, %tflip : vector<4xi8>");
        let _ = writeln!(
            tiled,
            "            %x32_{r} = vector.bitcast %xu{r} : vector<4xi8> to vector<1xi32>"
        );
        let _ = writeln!(
            tiled,
            "            %xs{r} = vector.extract %x32_{r}[0] : i32 from vector<1xi32>"
        );
        let _ = writeln!(
            tiled,
            "            %xb32_{r} = vector.broadcast %xs{r} : i32 to vector<16xi32>"
        );
        let _ = writeln!(
            tiled,
            "            %xb{r} = vector.bitcast %xb32_{r} : vector<16xi32> to vector<64xi8>"
        );
        let _ = writeln!(
            tiled,
            "            %tn{}  = llvm.call_intrinsic \"llvm.x86.avx512.vpdpbusd.512\"(%ta{}, %xb{r}, %blo) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>",
            2 * r,
            2 * r
        );
        let _ = writeln!(
            tiled,
            "            %tn{}  = llvm.call_intrinsic \"llvm.x86.avx512.vpdpbusd.512\"(%ta{}, %xb{r}, %bhi) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>",
            2 * r + 1,
            2 * r + 1
        );
        yields.push(format!("%tn{}", 2 * r));
        yields.push(format!("%tn{}", 2 * r + 1));
    }
    let _ = writeln!(tiled, "            scf.yield {} : {types}", yields.join(", "));
    let _ = writeln!(tiled, "          }}");
    let concat: Vec<String> = (0..32).map(|i| i.to_string()).collect();
    for r in 0..4 {
        let suffix = format!("_t{r}");
        let _ = writeln!(
            tiled,
            "          %acc_off{suffix} = vector.shuffle %tv#{}, %tv#{} [{}] : vector<16xi32>, vector<16xi32>",
            2 * r,
            2 * r + 1,
            concat.join(", ")
        );
        let _ = writeln!(
            tiled,
            "          %acc{suffix} = arith.subi %acc_off{suffix}, %correction : {vi}"
        );
        tiled.push_str(&rename_ssa(&epilogue, &suffix));
    }
    let _ = writeln!(tiled, "        }}");
    // The tiled loop runs first; the single-row loop takes the rest of the rows.
    let single_loop = s[rows_loop_at..].to_string();
    s.truncate(rows_loop_at);
    s.push_str(&tiled);
    s.push_str(&single_loop.replacen("scf.for %p = %start to %end", "scf.for %p = %tile_end to %end", 1));
}

/// Renames every SSA value defined in `text`, and the row `%p` and accumulator `%acc` it reads,
/// by appending `suffix`, so that a per-row epilogue can be repeated for several rows.
fn rename_ssa(text: &str, suffix: &str) -> String {
    let mut defined: Vec<String> = vec!["p".into(), "acc".into()];
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('%')
            && let Some(end) = rest.find(" = ")
        {
            defined.push(rest[..end].to_string());
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '%' {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            let name: String = chars[i + 1..j].iter().collect();
            out.push('%');
            out.push_str(&name);
            if defined.contains(&name) {
                out.push_str(suffix);
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}
