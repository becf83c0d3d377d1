//! LZO1X decompression (the format of `lzo1x_1_compress`, which `makedumpfile -l` uses), in
//! safe Rust: every input and output access is bounds-checked, so corrupt pages give an error.
//! Follows the state machine of the kernel's lib/lzo/lzo1x_decompress_safe.c.

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LzoError;

pub(crate) fn decompress(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), LzoError> {
    let mut ip = 0usize;
    let get = |ip: &mut usize| -> Result<usize, LzoError> {
        let b = *input.get(*ip).ok_or(LzoError)?;
        *ip += 1;
        Ok(b as usize)
    };
    let zeros = |ip: &mut usize| -> Result<usize, LzoError> {
        // Extended length: each zero byte adds 255, then one non-zero byte.
        let mut n = 0usize;
        while *input.get(*ip).ok_or(LzoError)? == 0 {
            *ip += 1;
            n += 255;
            if n > max * 2 + 255 {
                return Err(LzoError);
            }
        }
        Ok(n)
    };
    let copy_lit = |ip: &mut usize, out: &mut Vec<u8>, n: usize| -> Result<(), LzoError> {
        let s = input.get(*ip..*ip + n).ok_or(LzoError)?;
        if out.len() + n > max {
            return Err(LzoError);
        }
        out.extend_from_slice(s);
        *ip += n;
        Ok(())
    };
    let copy_match = |out: &mut Vec<u8>, dist: usize, n: usize| -> Result<(), LzoError> {
        if dist == 0 || dist > out.len() || out.len() + n > max {
            return Err(LzoError);
        }
        let start = out.len() - dist;
        for i in 0..n {
            let b = out[start + i];
            out.push(b);
        }
        Ok(())
    };

    let mut state;
    let first = *input.first().ok_or(LzoError)? as usize;
    if first > 17 {
        ip += 1;
        let t = first - 17;
        if t < 4 {
            copy_lit(&mut ip, out, t)?;
            state = t;
        } else {
            copy_lit(&mut ip, out, t)?;
            state = 4;
        }
    } else {
        state = 0;
    }
    loop {
        let mut t = get(&mut ip)?;
        let (dist, len, next);
        if t < 16 {
            if state == 0 {
                if t == 0 {
                    t = 15 + zeros(&mut ip)? + get(&mut ip)?;
                }
                copy_lit(&mut ip, out, t + 3)?;
                state = 4;
                continue;
            } else if state != 4 {
                next = t & 3;
                dist = 1 + (t >> 2) + (get(&mut ip)? << 2);
                len = 2;
            } else {
                next = t & 3;
                dist = 1 + 0x800 + (t >> 2) + (get(&mut ip)? << 2);
                len = 3;
            }
        } else if t >= 64 {
            next = t & 3;
            dist = 1 + ((t >> 2) & 7) + (get(&mut ip)? << 3);
            len = (t >> 5) + 1;
        } else if t >= 32 {
            let mut l = (t & 31) + 2;
            if l == 2 {
                l += zeros(&mut ip)? + 31 + get(&mut ip)?;
            }
            let v = get(&mut ip)? | (get(&mut ip)? << 8);
            dist = 1 + (v >> 2);
            next = v & 3;
            len = l;
        } else {
            let hi = (t & 8) << 11;
            let mut l = (t & 7) + 2;
            if l == 2 {
                l += zeros(&mut ip)? + 7 + get(&mut ip)?;
            }
            let v = get(&mut ip)? | (get(&mut ip)? << 8);
            let d = hi + (v >> 2);
            if d == 0 {
                // End-of-stream marker.
                return if out.len() == max {
                    Ok(())
                } else {
                    Err(LzoError)
                };
            }
            dist = d + 0x4000;
            next = v & 3;
            len = l;
        }
        copy_match(out, dist, len)?;
        copy_lit(&mut ip, out, next)?;
        state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_only_stream() {
        // 0x11+n-? : first byte 17+t with t>=4 literals, then the end marker 0x11 0 0.
        let mut s = vec![17 + 5];
        s.extend_from_slice(b"hello");
        s.extend_from_slice(&[0x11, 0, 0]);
        let mut out = Vec::new();
        decompress(&s, &mut out, 5).unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn m2_match_repeats() {
        // "abcd" then an M2 match of length 3 at distance 4 (t = (len-1)<<5 | (d-1 & 7) << 2),
        // then end marker.
        let mut s = vec![17 + 4];
        s.extend_from_slice(b"abcd");
        s.push((2 << 5) | (3 << 2));
        s.push(0);
        s.extend_from_slice(&[0x11, 0, 0]);
        let mut out = Vec::new();
        decompress(&s, &mut out, 7).unwrap();
        assert_eq!(out, b"abcdabc");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = (0..64u32)
                .map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i * 40503) >> 7) as u8)
                .collect();
            let mut out = Vec::new();
            let _ = decompress(&bytes, &mut out, 4096);
            assert!(out.len() <= 4096);
        }
    }
}
