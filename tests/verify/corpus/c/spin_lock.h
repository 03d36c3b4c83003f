/* The maps of the spin-lock programs: a value with a struct bpf_spin_lock (hash and array) and one without. */
#ifndef CORPUS_SPIN_LOCK_H
#define CORPUS_SPIN_LOCK_H
#include "common.h"
struct locked { struct bpf_spin_lock lock; __u32 pad; __u64 cnt; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, __u32); __type(value, struct locked); } locks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, struct locked); } alocks SEC(".maps");
struct plain { __u32 lock; __u32 pad; __u64 cnt; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, __u32); __type(value, struct plain); } nolock SEC(".maps");
#endif
