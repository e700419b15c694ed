/*
 * The C API of libextism exercised from C, as a host application would use it.
 *
 * Usage: capi_test TESTDATA_DIR MODE [ARG]
 *   main              every function, its error paths and NULL arguments; logging through
 *                     extism_log_custom("info")
 *   log-filter        extism_log_custom with a filter directive list
 *   log-trace         extism_log_custom("trace"): the runtime's own events
 *   log-bad-filter    extism_log_custom with nothing parseable: falls back to errors only
 *   log-off           extism_log_custom("off")
 *   log-null          extism_log_custom(NULL): the default level, error
 *   log-file PATH     extism_log_file(PATH, "warn")
 * Logging is process-wide and can be set up once, hence one process per logging mode.
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#include "extism.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef EXPECTED_VERSION
#error "compile with -DEXPECTED_VERSION=\"x.y.z\""
#endif

static atomic_int passed, failed;
static const char *testdata;

static void check(int ok, const char *what, const char *file, int line) {
  if (ok) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
  }
}
#define CHECK(cond) check((cond) ? 1 : 0, #cond, __FILE__, __LINE__)

/* Compares a C string with an expected value (NULL allowed on both sides). */
static void check_str(const char *got, const char *want, const char *what, const char *file,
                      int line) {
  int ok = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
  if (!ok)
    fprintf(stderr, "  got %s%s%s, want %s%s%s\n", got ? "\"" : "", got ? got : "NULL",
            got ? "\"" : "", want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
  check(ok, what, file, line);
}
#define CHECK_STR(got, want) check_str((got), (want), #got " == " #want, __FILE__, __LINE__)

static int starts_with(const char *s, const char *prefix) {
  return s && strncmp(s, prefix, strlen(prefix)) == 0;
}
static int contains(const char *s, const char *needle) { return s && strstr(s, needle); }
#define CHECK_CONTAINS(s, needle)                                                              \
  do {                                                                                         \
    const char *s_ = (s);                                                                      \
    if (!contains(s_, (needle)))                                                               \
      fprintf(stderr, "  got %s\n", s_ ? s_ : "NULL");                                         \
    CHECK(contains(s_, (needle)));                                                             \
  } while (0)

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- files and plugins */

static char *path_of(const char *rel) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", testdata, rel);
  return buf;
}

static uint8_t *read_file(const char *rel, size_t *len) {
  FILE *f = fopen(path_of(rel), "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path_of(rel));
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *data = malloc(n ? n : 1);
  if (fread(data, 1, n, f) != (size_t)n)
    exit(2);
  fclose(f);
  *len = n;
  return data;
}

/* The Rust PDK plugin NAME (testdata/rust/wasm/NAME.wasm). */
typedef struct {
  uint8_t *data;
  size_t len;
} Wasm;

static Wasm pdk(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, "rust/wasm/%s.wasm", name);
  Wasm w;
  w.data = read_file(rel, &w.len);
  return w;
}

static ExtismPlugin *new_plugin(Wasm w, const ExtismFunction **fns, ExtismSize n, bool wasi) {
  char *err = NULL;
  ExtismPlugin *p = extism_plugin_new(w.data, w.len, fns, n, wasi, &err);
  if (!p) {
    fprintf(stderr, "plugin creation failed: %s\n", err ? err : "(no message)");
    exit(2);
  }
  CHECK(err == NULL);
  return p;
}

static ExtismPlugin *new_wat(const char *wat, const ExtismFunction **fns, ExtismSize n) {
  Wasm w = {(uint8_t *)wat, strlen(wat)};
  return new_plugin(w, fns, n, false);
}

static int32_t call(ExtismPlugin *p, const char *fn, const char *input) {
  return extism_plugin_call(p, fn, (const uint8_t *)input, input ? strlen(input) : 0);
}

/* The last output as a NUL-terminated string (static buffer). */
static const char *output(ExtismPlugin *p) {
  static char buf[65536];
  ExtismSize n = extism_plugin_output_length(p);
  const uint8_t *data = extism_plugin_output_data(p);
  if (n >= sizeof buf || (n > 0 && data == NULL))
    return "<bad output>";
  if (n)
    memcpy(buf, data, n);
  buf[n] = 0;
  return buf;
}

/* The message from a failed constructor, then freed. */
static int errmsg_starts_with(char *err, const char *prefix, const char *needle) {
  int ok = starts_with(err, prefix) && (needle == NULL || contains(err, needle));
  if (!ok)
    fprintf(stderr, "  errmsg: %s\n", err ? err : "NULL");
  extism_plugin_new_error_free(err);
  return ok;
}

static const char *COMPILE = "Unable to compile Extism plugin: ";
static const char *CREATE = "Unable to create Extism plugin: ";

/* ---------------------------------------------------------------- version */

static void test_version(void) {
  const char *v = extism_version();
  CHECK_STR(v, EXPECTED_VERSION);
  CHECK(v == extism_version());
  CHECK(strcmp(v, "0.0.0") != 0);
  /* the upstream release it is compatible with, then this library's version */
  CHECK(strncmp(v, "1.", 2) == 0);
  CHECK_CONTAINS(v, "+extism-run.");
}

/* ---------------------------------------------------------------- constructors */

static void test_constructor_errors(void) {
  char *err = NULL;
  CHECK(extism_plugin_new(NULL, 10, NULL, 0, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));

  err = NULL;
  const uint8_t empty[1] = {0};
  CHECK(extism_plugin_new(empty, 0, NULL, 0, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, "No wasm files specified in Extism manifest"));

  err = NULL;
  const char *junk = "\x00\x61\x73\x6d\x01\x00\x00\x00\xff\xff";
  CHECK(extism_plugin_new((const uint8_t *)junk, 10, NULL, 0, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));

  err = NULL;
  const char *bad_manifest = "{\"wasm\": 5}";
  CHECK(extism_plugin_new((const uint8_t *)bad_manifest, strlen(bad_manifest), NULL, 0, false,
                          &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, "manifest"));

  /* errmsg may be NULL */
  CHECK(extism_plugin_new(NULL, 0, NULL, 0, false, NULL) == NULL);
  CHECK(extism_compiled_plugin_new(NULL, 0, NULL, 0, false, NULL) == NULL);
  CHECK(extism_plugin_new_from_compiled(NULL, NULL) == NULL);
  extism_plugin_new_error_free(NULL);
  extism_plugin_free(NULL);
  extism_compiled_plugin_free(NULL);
  extism_function_free(NULL);

  /* a WASI plugin without WASI: unresolved imports */
  Wasm wasi = pdk("wasi_stdout");
  err = NULL;
  CHECK(extism_plugin_new(wasi.data, wasi.len, NULL, 0, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, "wasi_snapshot_preview1"));

  /* the compiled form succeeds; instantiating it reports the import */
  err = NULL;
  ExtismCompiledPlugin *c = extism_compiled_plugin_new(wasi.data, wasi.len, NULL, 0, false, &err);
  CHECK(c != NULL);
  CHECK(err == NULL);
  CHECK(extism_plugin_new_from_compiled(c, &err) == NULL);
  CHECK(errmsg_starts_with(err, CREATE, "wasi_snapshot_preview1"));
  extism_compiled_plugin_free(c);

  err = NULL;
  CHECK(extism_plugin_new_with_fuel_limit(wasi.data, wasi.len, NULL, 0, false, 1000, &err) ==
        NULL);
  CHECK(errmsg_starts_with(err, CREATE, "wasi_snapshot_preview1"));

  err = NULL;
  CHECK(extism_plugin_new_with_fuel_limit(NULL, 0, NULL, 0, false, 1000, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));

  err = NULL;
  CHECK(extism_compiled_plugin_new_with_fuel_limit((const uint8_t *)junk, 10, NULL, 0, false, 5, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));

  err = NULL;
  CHECK(extism_plugin_new_from_compiled(NULL, &err) == NULL);
  CHECK(errmsg_starts_with(err, CREATE, NULL));
  free(wasi.data);
}

/* ---------------------------------------------------------------- calls and results */

static void test_calls(void) {
  Wasm cv = pdk("count_vowels");
  ExtismPlugin *p = new_plugin(cv, NULL, 0, false);

  CHECK(call(p, "count_vowels", "Hello, World!") == 0);
  CHECK(extism_plugin_error(p) == NULL);
  CHECK(extism_error(p) == NULL);
  CHECK_STR(output(p), "{\"count\":3,\"total\":3,\"vowels\":\"aeiouAEIOU\"}");
  CHECK(call(p, "count_vowels", "Hello, World!") == 0);
  CHECK_STR(output(p), "{\"count\":3,\"total\":6,\"vowels\":\"aeiouAEIOU\"}");

  CHECK(extism_plugin_function_exists(p, "count_vowels"));
  CHECK(!extism_plugin_function_exists(p, "nope"));
  CHECK(!extism_plugin_function_exists(p, "memory"));
  CHECK(!extism_plugin_function_exists(p, NULL));
  CHECK(!extism_plugin_function_exists(p, "\xff\xfe"));
  CHECK(!extism_plugin_function_exists(NULL, "count_vowels"));

  /* missing export */
  CHECK(call(p, "nope", "x") == -1);
  CHECK_STR(extism_plugin_error(p), "Function not found: nope");
  CHECK_STR(extism_error(p), "Function not found: nope");
  CHECK(extism_plugin_error(p) == extism_plugin_error(p));
  CHECK(extism_plugin_output_length(p) == 0);

  /* NULL and invalid arguments: -1, an error, and no stale output */
  CHECK(call(p, "count_vowels", "aaa") == 0);
  CHECK(extism_plugin_output_length(p) > 0);
  CHECK(extism_plugin_call(p, NULL, NULL, 0) == -1);
  CHECK(extism_plugin_error(p) != NULL);
  CHECK(extism_plugin_output_length(p) == 0);
  CHECK(extism_plugin_call(p, "\xff", NULL, 0) == -1);
  CHECK_CONTAINS(extism_plugin_error(p), "utf-8");
  CHECK(extism_plugin_call(p, "count_vowels", NULL, 5) == -1);
  CHECK_CONTAINS(extism_plugin_error(p), "null pointer");
  CHECK(extism_plugin_call(NULL, "count_vowels", NULL, 0) == -1);
  CHECK(extism_plugin_call_with_host_context(NULL, "count_vowels", NULL, 0, NULL) == -1);
  CHECK(extism_plugin_error(NULL) == NULL);
  CHECK(extism_error(NULL) == NULL);
  CHECK(extism_plugin_output_length(NULL) == 0);
  CHECK(extism_plugin_output_data(NULL) == NULL);

  /* NULL data with length 0 is empty input */
  CHECK(extism_plugin_call(p, "count_vowels", NULL, 0) == 0);
  CHECK_STR(output(p), "{\"count\":0,\"total\":9,\"vowels\":\"aeiouAEIOU\"}");
  extism_plugin_free(p);

  /* binary data round trip, including NUL bytes; empty output is not NULL */
  Wasm echo = pdk("echo");
  p = new_plugin(echo, NULL, 0, false);
  const uint8_t bytes[] = {0, 1, 2, 255, 0, 'a', 0};
  CHECK(extism_plugin_call(p, "echo", bytes, sizeof bytes) == 0);
  CHECK(extism_plugin_output_length(p) == sizeof bytes);
  CHECK(memcmp(extism_plugin_output_data(p), bytes, sizeof bytes) == 0);
  CHECK(extism_plugin_call(p, "echo", NULL, 0) == 0);
  CHECK(extism_plugin_output_length(p) == 0);
  CHECK(extism_plugin_output_data(p) != NULL);
  extism_plugin_free(p);

  /* guest errors, traps and return codes (guest-abi.md §11.3) */
  Wasm faults = pdk("faults");
  p = new_plugin(faults, NULL, 0, false);
  CHECK(call(p, "fail", "") == -1);
  CHECK_STR(extism_plugin_error(p), "this call failed");
  CHECK(call(p, "ok_after_error", "") == 0);
  CHECK_STR(extism_plugin_error(p), "error with return code 0");
  CHECK(call(p, "trap", "") == 134);
  CHECK(extism_plugin_error(p) != NULL && strlen(extism_plugin_error(p)) > 0);
  CHECK(call(p, "count_calls", "") == 0);
  CHECK(extism_plugin_error(p) == NULL);
  CHECK_STR(output(p), "1");
  CHECK(call(p, "count_calls", "") == 0);
  CHECK_STR(output(p), "2");
  extism_plugin_free(p);

  /* WAT text; a non-zero return code without an error */
  size_t abi_len;
  uint8_t *abi = read_file("wat/abi.wat", &abi_len);
  Wasm abi_w = {abi, abi_len};
  p = new_plugin(abi_w, NULL, 0, false);
  CHECK(call(p, "rc_7", "") == 7);
  CHECK(extism_plugin_error(p) == NULL);
  CHECK(call(p, "unit", "") == 0);
  CHECK(call(p, "error_rc5", "") == 5);
  CHECK_STR(extism_plugin_error(p), "guest failure");
  extism_plugin_free(p);
  free(abi);
  free(cv.data);
  free(echo.data);
  free(faults.data);
}

/* ---------------------------------------------------------------- config, id, reset */

static void test_config(void) {
  Wasm faults = pdk("faults");
  ExtismPlugin *p = new_plugin(faults, NULL, 0, false);
  const char *cfg = "{\"greeting\": \"hi\", \"other\": \"x\"}";
  CHECK(extism_plugin_config(p, (const uint8_t *)cfg, strlen(cfg)));
  CHECK(call(p, "config_get", "greeting") == 0);
  CHECK_STR(output(p), "hi");

  /* refused, changing nothing */
  const char *bad[] = {"not json", "[\"a\"]", "{\"greeting\": 5}",
                       "{\"greeting\": \"changed\", \"n\": {}}", "\"str\""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(!extism_plugin_config(p, (const uint8_t *)bad[i], strlen(bad[i])));
  CHECK(!extism_plugin_config(p, NULL, 5));
  CHECK(!extism_plugin_config(p, NULL, 0));
  CHECK(!extism_plugin_config(NULL, (const uint8_t *)cfg, strlen(cfg)));
  CHECK(call(p, "config_get", "greeting") == 0);
  CHECK_STR(output(p), "hi");

  /* null removes a key */
  const char *remove = "{\"greeting\": null}";
  CHECK(extism_plugin_config(p, (const uint8_t *)remove, strlen(remove)));
  CHECK(call(p, "config_get", "greeting") == 0);
  CHECK_STR(output(p), "<none>");
  CHECK(call(p, "config_get", "other") == 0);
  CHECK_STR(output(p), "x");
  extism_plugin_free(p);

  /* config from a manifest, per instance */
  char manifest[8192];
  snprintf(manifest, sizeof manifest,
           "{\"wasm\": [{\"path\": \"%s\"}], \"config\": {\"vowels\": \"lo\"}}",
           path_of("rust/wasm/count_vowels.wasm"));
  Wasm m = {(uint8_t *)manifest, strlen(manifest)};
  ExtismPlugin *a = new_plugin(m, NULL, 0, false);
  ExtismPlugin *b = new_plugin(m, NULL, 0, false);
  const char *aeiou = "{\"vowels\": \"aeiou\"}";
  CHECK(extism_plugin_config(b, (const uint8_t *)aeiou, strlen(aeiou)));
  CHECK(call(a, "count_vowels_no_vars", "Hello, World!") == 0);
  CHECK_STR(output(a), "{\"count\":5,\"total\":5,\"vowels\":\"lo\"}");
  CHECK(call(b, "count_vowels_no_vars", "Hello, World!") == 0);
  CHECK_STR(output(b), "{\"count\":3,\"total\":3,\"vowels\":\"aeiou\"}");
  extism_plugin_free(a);
  extism_plugin_free(b);
  free(faults.data);
}

static void test_id(void) {
  Wasm cv = pdk("count_vowels");
  ExtismPlugin *a = new_plugin(cv, NULL, 0, false);
  ExtismPlugin *b = new_plugin(cv, NULL, 0, false);
  const uint8_t *ia = extism_plugin_id(a);
  const uint8_t *ib = extism_plugin_id(b);
  CHECK(ia != NULL && ib != NULL);
  CHECK((ia[6] >> 4) == 4);       /* version 4 */
  CHECK((ia[8] & 0xc0) == 0x80);  /* RFC 4122 variant */
  CHECK(memcmp(ia, ib, 16) != 0);
  uint8_t before[16];
  memcpy(before, ia, 16);
  CHECK(call(a, "count_vowels", "abc") == 0);
  CHECK(extism_plugin_id(a) == ia);
  CHECK(memcmp(extism_plugin_id(a), before, 16) == 0);
  CHECK(extism_plugin_id(NULL) == NULL);
  extism_plugin_free(a);
  extism_plugin_free(b);
  free(cv.data);
}

static void test_reset(void) {
  Wasm cv = pdk("count_vowels");
  ExtismPlugin *p = new_plugin(cv, NULL, 0, false);
  CHECK(call(p, "count_vowels", "aaa") == 0);
  CHECK(extism_plugin_output_length(p) > 0);
  CHECK(extism_plugin_reset(p));
  CHECK(extism_plugin_output_length(p) == 0);
  CHECK(extism_plugin_output_data(p) != NULL);
  /* vars survive a reset */
  CHECK(call(p, "count_vowels", "aaa") == 0);
  CHECK_STR(output(p), "{\"count\":3,\"total\":6,\"vowels\":\"aeiouAEIOU\"}");
  CHECK(!extism_plugin_reset(NULL));
  extism_plugin_free(p);
  free(cv.data);
}

/* ---------------------------------------------------------------- host functions */

typedef struct {
  atomic_int calls;
  atomic_int freed;
  void *last_data;
} Counter;

static void free_counter(void *data) { ((Counter *)data)->freed++; }

static ExtismCurrentPlugin *stale_current;

/* host_reflect: returns a new block with the argument upper-cased; also probes the memory
 * accessors. */
static void host_reflect_upper(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                               ExtismVal *out, ExtismSize n_out, void *data) {
  Counter *c = data;
  c->calls++;
  c->last_data = data;
  stale_current = cp;
  if (n_in != 1 || n_out != 1 || in[0].t != ExtismValType_I64 || out[0].t != ExtismValType_I64)
    return;
  ExtismMemoryHandle h = in[0].v.i64;
  ExtismSize len = extism_current_plugin_memory_length(cp, h);
  ExtismMemoryHandle r = extism_current_plugin_memory_alloc(cp, len);
  uint8_t *mem = extism_current_plugin_memory(cp);
  for (ExtismSize i = 0; i < len; i++)
    mem[r + i] = toupper(mem[h + i]);
  out[0].v.i64 = r;
}

static ExtismFunction *reflect_fn(Counter *c) {
  ExtismValType ptr[] = {EXTISM_PTR};
  return extism_function_new("host_reflect", ptr, 1, ptr, 1, host_reflect_upper, c,
                             free_counter);
}

static const char *CONTEXT_TEXT = "context says hi";

/* host_context: returns the bytes of the C string passed as host context (0 if none). */
static void host_context_fn(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                            ExtismVal *out, ExtismSize n_out, void *data) {
  (void)data;
  CHECK(in == NULL && n_in == 0 && n_out == 1);
  const char *ctx = extism_current_plugin_host_context(cp);
  out[0].v.i64 = 0;
  if (!ctx)
    return;
  ExtismMemoryHandle r = extism_current_plugin_memory_alloc(cp, strlen(ctx));
  memcpy(extism_current_plugin_memory(cp) + r, ctx, strlen(ctx));
  out[0].v.i64 = r;
}

static ExtismFunction *context_fn(void) {
  ExtismValType ptr[] = {EXTISM_PTR};
  return extism_function_new("host_context", NULL, 0, ptr, 1, host_context_fn, NULL, NULL);
}

static void noop_fn(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                    ExtismVal *out, ExtismSize n_out, void *data) {
  (void)cp, (void)in, (void)n_in, (void)out, (void)n_out, (void)data;
}

static void test_function_new(void) {
  Counter c = {0};
  ExtismValType i64[] = {ExtismValType_I64};
  CHECK(extism_function_new(NULL, i64, 1, i64, 1, noop_fn, &c, free_counter) == NULL);
  CHECK(extism_function_new("f", i64, 1, i64, 1, NULL, &c, free_counter) == NULL);
  CHECK(extism_function_new("\xff\xfe", i64, 1, i64, 1, noop_fn, &c, free_counter) == NULL);
  ExtismValType refused[] = {ExtismValType_V128, ExtismValType_FuncRef, ExtismValType_ExternRef,
                             (ExtismValType)7, (ExtismValType)-1};
  for (int i = 0; i < 5; i++) {
    CHECK(extism_function_new("f", &refused[i], 1, NULL, 0, noop_fn, &c, free_counter) == NULL);
    CHECK(extism_function_new("f", NULL, 0, &refused[i], 1, noop_fn, &c, free_counter) == NULL);
  }
  /* refused definitions keep nothing: user data is not released */
  CHECK(c.freed == 0);

  /* NULL arrays or zero counts mean no values */
  ExtismFunction *f = extism_function_new("f", NULL, 3, i64, 0, noop_fn, &c, free_counter);
  CHECK(f != NULL);
  extism_function_set_namespace(f, NULL);
  extism_function_set_namespace(NULL, "ns");
  extism_function_set_namespace(f, "\xff-lossy");
  /* an unattached function releases its user data when freed, once */
  extism_function_free(f);
  CHECK(c.freed == 1);

  /* NULL user data: free_user_data is not called */
  f = extism_function_new("f", NULL, 0, NULL, 0, noop_fn, NULL, free_counter);
  CHECK(f != NULL);
  extism_function_free(f);
}

static void test_host_functions(void) {
  Wasm hf = pdk("host_fns");
  Counter c = {0};
  ExtismFunction *reflect = reflect_fn(&c);
  ExtismFunction *ctx = context_fn();
  CHECK(reflect != NULL && ctx != NULL);
  const ExtismFunction *fns[] = {reflect, ctx};
  ExtismPlugin *p = new_plugin(hf, fns, 2, false);

  CHECK(call(p, "roundtrip", "hello, host") == 0);
  CHECK(extism_plugin_error(p) == NULL);
  CHECK_STR(output(p), "HELLO, HOST");
  CHECK(c.calls == 1);
  CHECK(c.last_data == &c);
  CHECK(call(p, "roundtrip", "") == 0);
  CHECK_STR(output(p), "");

  /* the callback's ExtismCurrentPlugin is dead after the call */
  CHECK(stale_current != NULL);
  CHECK(extism_current_plugin_memory(stale_current) == NULL);
  CHECK(extism_current_plugin_memory_alloc(stale_current, 16) == 0);
  CHECK(extism_current_plugin_memory_length(stale_current, 1) == 0);
  CHECK(extism_current_plugin_host_context(stale_current) == NULL);
  extism_current_plugin_memory_free(stale_current, 1);
  CHECK(extism_current_plugin_memory(NULL) == NULL);
  CHECK(extism_current_plugin_memory_alloc(NULL, 16) == 0);
  CHECK(extism_current_plugin_memory_length(NULL, 1) == 0);
  CHECK(extism_current_plugin_host_context(NULL) == NULL);
  extism_current_plugin_memory_free(NULL, 1);

  /* host context: the pointer given to the call, NULL otherwise */
  CHECK(extism_plugin_call_with_host_context(p, "read_context", NULL, 0,
                                             (void *)CONTEXT_TEXT) == 0);
  CHECK_STR(output(p), CONTEXT_TEXT);
  CHECK(call(p, "read_context", "") == 0);
  CHECK_STR(output(p), "");
  CHECK(extism_plugin_call_with_host_context(p, "read_context", NULL, 0, NULL) == 0);
  CHECK_STR(output(p), "");

  /* attached: freeing the wrapper keeps the definition alive in the plugin */
  extism_function_free(reflect);
  extism_function_free(ctx);
  CHECK(c.freed == 0);
  CHECK(call(p, "roundtrip", "abc") == 0);
  CHECK_STR(output(p), "ABC");
  extism_plugin_free(p);
  CHECK(c.freed == 1);
  free(hf.data);
}

static void test_attach_rules(void) {
  Wasm hf = pdk("host_fns");
  Wasm cv = pdk("count_vowels");
  Counter c = {0};
  ExtismFunction *reflect = reflect_fn(&c);
  ExtismFunction *ctx = context_fn();
  char *err = NULL;

  /* NULL array: no functions, whatever the count */
  ExtismPlugin *p = extism_plugin_new(cv.data, cv.len, NULL, 5, false, &err);
  CHECK(p != NULL);
  extism_plugin_free(p);

  /* a NULL entry is refused; the entries before it are consumed all the same (as upstream):
   * their user data is released, and freeing the emptied wrapper is a no-op */
  Counter c0 = {0};
  ExtismFunction *first = reflect_fn(&c0);
  const ExtismFunction *with_null[] = {first, NULL};
  CHECK(extism_plugin_new(hf.data, hf.len, with_null, 2, false, &err) == NULL);
  CHECK_STR(err, "Cannot pass null pointer");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(c0.freed == 1);
  extism_function_free(first);
  CHECK(c0.freed == 1);

  /* the same object twice */
  Counter c1 = {0};
  ExtismFunction *dup = reflect_fn(&c1);
  const ExtismFunction *twice[] = {dup, dup};
  CHECK(extism_compiled_plugin_new(hf.data, hf.len, twice, 2, false, &err) == NULL);
  CHECK_STR(err, "Function cannot be registered with multiple different Plugins");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(c1.freed == 1);
  extism_function_free(dup);
  CHECK(c1.freed == 1);

  /* a failed constructor consumes the functions, as upstream: free_user_data runs once, and
   * they cannot be given to another constructor */
  const ExtismFunction *fns[] = {reflect, ctx};
  const uint8_t junk[] = "junk";
  CHECK(extism_plugin_new(junk, 4, fns, 2, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));
  err = NULL;
  CHECK(c.freed == 1);
  CHECK(extism_plugin_new(hf.data, hf.len, fns, 2, false, &err) == NULL);
  CHECK_STR(err, "Function cannot be registered with multiple different Plugins");
  extism_plugin_new_error_free(err);
  err = NULL;
  /* namespace changes on an emptied function are ignored */
  extism_function_set_namespace(reflect, "elsewhere");
  extism_function_free(reflect);
  extism_function_free(ctx);
  CHECK(c.freed == 1);

  /* the same for the fuel-limited and the compiled constructors */
  Counter c2 = {0};
  ExtismFunction *fuelled = reflect_fn(&c2);
  const ExtismFunction *one[] = {fuelled};
  CHECK(extism_plugin_new_with_fuel_limit(NULL, 0, one, 1, false, 1000, &err) == NULL);
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(c2.freed == 1);
  extism_function_free(fuelled);
  Counter c3 = {0};
  ExtismFunction *precompiled = reflect_fn(&c3);
  one[0] = precompiled;
  CHECK(extism_compiled_plugin_new(junk, 4, one, 1, false, &err) == NULL);
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(c3.freed == 1);
  extism_function_free(precompiled);
  CHECK(c3.freed == 1);

  /* attached once: a second plugin is refused, and the refusal frees nothing */
  Counter c4 = {0};
  reflect = reflect_fn(&c4);
  ctx = context_fn();
  fns[0] = reflect;
  fns[1] = ctx;
  p = extism_plugin_new(hf.data, hf.len, fns, 2, false, &err);
  CHECK(p != NULL);
  CHECK(call(p, "roundtrip", "again") == 0);
  CHECK_STR(output(p), "AGAIN");
  CHECK(extism_plugin_new(hf.data, hf.len, fns, 2, false, &err) == NULL);
  CHECK_STR(err, "Function cannot be registered with multiple different Plugins");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(extism_plugin_new_with_fuel_limit(hf.data, hf.len, fns, 1, false, 1000000, &err) == NULL);
  CHECK_STR(err, "Function cannot be registered with multiple different Plugins");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(c4.freed == 0);
  CHECK(call(p, "roundtrip", "still") == 0);
  extism_plugin_free(p);
  CHECK(c4.freed == 1);
  extism_function_free(reflect);
  extism_function_free(ctx);
  CHECK(c4.freed == 1);

  /* a missing host function is an import error */
  CHECK(extism_plugin_new(hf.data, hf.len, NULL, 0, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, "extism:host/user"));
  free(hf.data);
  free(cv.data);
}

/* Every value type, bit-exact both ways (signalling NaNs included). */
static const char *TYPES_WAT =
    "(module\n"
    "  (import \"extism:host/user\" \"types\"\n"
    "    (func $types (param i32 i64 f32 f64) (result i32 i64 f32 f64)))\n"
    "  (import \"extism:host/user\" \"noargs\" (func $noargs))\n"
    "  (func (export \"run\") (result i32)\n"
    "    (local $a i32) (local $b i64) (local $c f32) (local $d f64)\n"
    "    (call $noargs)\n"
    "    (call $types (i32.const -7) (i64.const 0x8000000000000000)\n"
    "      (f32.reinterpret_i32 (i32.const 0x7fa00001))\n"
    "      (f64.reinterpret_i64 (i64.const 0x8000000000000000)))\n"
    "    (local.set $d) (local.set $c) (local.set $b) (local.set $a)\n"
    "    (if (i32.ne (local.get $a) (i32.const 42)) (then (return (i32.const 1))))\n"
    "    (if (i64.ne (local.get $b) (i64.const 0x123456789abcdef0)) (then (return (i32.const 2))))\n"
    "    (if (i32.ne (i32.reinterpret_f32 (local.get $c)) (i32.const 0x7fa00002))\n"
    "      (then (return (i32.const 3))))\n"
    "    (if (i64.ne (i64.reinterpret_f64 (local.get $d)) (i64.const 0xfff0000000000001))\n"
    "      (then (return (i32.const 4))))\n"
    "    (i32.const 0)))\n";

static atomic_int types_ok, noargs_ok;

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static uint64_t f64_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static void types_fn(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                     ExtismVal *out, ExtismSize n_out, void *data) {
  (void)cp, (void)data;
  int ok = n_in == 4 && n_out == 4;
  ok = ok && in[0].t == ExtismValType_I32 && in[0].v.i32 == -7;
  ok = ok && in[1].t == ExtismValType_I64 && in[1].v.i64 == INT64_MIN;
  ok = ok && in[2].t == ExtismValType_F32 && f32_bits(in[2].v.f32) == 0x7fa00001u;
  ok = ok && in[3].t == ExtismValType_F64 && f64_bits(in[3].v.f64) == 0x8000000000000000ull;
  /* outputs arrive typed and zeroed */
  ok = ok && out[0].t == ExtismValType_I32 && out[1].t == ExtismValType_I64 &&
       out[2].t == ExtismValType_F32 && out[3].t == ExtismValType_F64;
  for (int i = 0; i < 4; i++)
    ok = ok && out[i].v.i64 == 0;
  types_ok = ok;
  out[0].v.i32 = 42;
  out[1].v.i64 = 0x123456789abcdef0;
  uint32_t f = 0x7fa00002u;
  memcpy(&out[2].v.f32, &f, 4);
  uint64_t d = 0xfff0000000000001ull;
  memcpy(&out[3].v.f64, &d, 8);
  /* a callback that rewrites `t` still has its result read as the declared type */
  out[0].t = ExtismValType_F64;
}

static void noargs_fn(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                      ExtismVal *out, ExtismSize n_out, void *data) {
  (void)data;
  noargs_ok = cp != NULL && in == NULL && n_in == 0 && out == NULL && n_out == 0;
}

static const char *NAMESPACE_WAT =
    "(module\n"
    "  (import \"my:ns\" \"double\" (func $double (param i64) (result i64)))\n"
    "  (func (export \"run\") (result i32)\n"
    "    (if (i64.ne (call $double (i64.const 21)) (i64.const 42)) (then (return (i32.const 1))))\n"
    "    (i32.const 0)))\n";

static void double_fn(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                      ExtismVal *out, ExtismSize n_out, void *data) {
  (void)cp, (void)n_in, (void)n_out, (void)data;
  out[0].v.i64 = in[0].v.i64 * 2;
}

static void test_value_types_and_namespaces(void) {
  ExtismValType params[] = {ExtismValType_I32, ExtismValType_I64, ExtismValType_F32,
                            ExtismValType_F64};
  ExtismFunction *types = extism_function_new("types", params, 4, params, 4, types_fn, NULL, NULL);
  ExtismFunction *noargs = extism_function_new("noargs", NULL, 0, NULL, 0, noargs_fn, NULL, NULL);
  const ExtismFunction *fns[] = {types, noargs};
  ExtismPlugin *p = new_wat(TYPES_WAT, fns, 2);
  CHECK(call(p, "run", "") == 0);
  CHECK(extism_plugin_error(p) == NULL);
  CHECK(types_ok);
  CHECK(noargs_ok);
  extism_plugin_free(p);
  extism_function_free(types);
  extism_function_free(noargs);

  ExtismValType i64[] = {ExtismValType_I64};
  ExtismFunction *dbl = extism_function_new("double", i64, 1, i64, 1, double_fn, NULL, NULL);
  const ExtismFunction *dfns[] = {dbl};
  /* default namespace: the import is not satisfied */
  char *err = NULL;
  Wasm w = {(uint8_t *)NAMESPACE_WAT, strlen(NAMESPACE_WAT)};
  CHECK(extism_plugin_new(w.data, w.len, dfns, 1, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, "my:ns"));
  /* the failed constructor consumed dbl (as upstream): a new definition, in the namespace */
  extism_function_free(dbl);
  dbl = extism_function_new("double", i64, 1, i64, 1, double_fn, NULL, NULL);
  dfns[0] = dbl;
  extism_function_set_namespace(dbl, "my:ns");
  p = new_wat(NAMESPACE_WAT, dfns, 1);
  CHECK(call(p, "run", "") == 0);
  extism_plugin_free(p);
  extism_function_free(dbl);
}

/* ---------------------------------------------------------------- re-entrancy */

typedef struct {
  ExtismPlugin *self;
  ExtismPlugin *other;
  int ran;
} Reentry;

static void reentrant_fn(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                         ExtismVal *out, ExtismSize n_out, void *data) {
  (void)in, (void)n_in, (void)n_out;
  Reentry *r = data;
  r->ran = 1;
  /* calls into the running plugin fail at once */
  CHECK(extism_plugin_call(r->self, "roundtrip", NULL, 0) == -1);
  CHECK(extism_plugin_call_with_host_context(r->self, "roundtrip", NULL, 0, r) == -1);
  CHECK(extism_plugin_error(r->self) == NULL);
  CHECK(extism_plugin_output_length(r->self) == 0);
  CHECK(extism_plugin_output_data(r->self) == NULL);
  const char *cfg = "{\"a\": \"b\"}";
  CHECK(!extism_plugin_config(r->self, (const uint8_t *)cfg, strlen(cfg)));
  CHECK(!extism_plugin_reset(r->self));
  extism_plugin_allow_http_response_headers(r->self);
  extism_plugin_free(r->self); /* refused: the plugin is running */
  /* what needs no lock still works */
  CHECK(extism_plugin_function_exists(r->self, "roundtrip"));
  CHECK(extism_plugin_id(r->self) != NULL);
  CHECK(extism_plugin_cancel_handle(r->self) != NULL);
  /* another plugin may be called */
  CHECK(call(r->other, "count_vowels", "aeiou") == 0);
  CHECK_STR(output(r->other), "{\"count\":5,\"total\":5,\"vowels\":\"aeiouAEIOU\"}");
  /* the current plugin is still usable afterwards */
  ExtismMemoryHandle h = extism_current_plugin_memory_alloc(cp, 2);
  CHECK(h != 0);
  memcpy(extism_current_plugin_memory(cp) + h, "ok", 2);
  out[0].v.i64 = h;
}

static void test_reentrancy(void) {
  Wasm hf = pdk("host_fns");
  Wasm cv = pdk("count_vowels");
  Reentry r = {0};
  ExtismValType ptr[] = {EXTISM_PTR};
  ExtismFunction *f = extism_function_new("host_reflect", ptr, 1, ptr, 1, reentrant_fn, &r, NULL);
  ExtismFunction *ctx = context_fn();
  const ExtismFunction *fns[] = {f, ctx};
  r.self = new_plugin(hf, fns, 2, false);
  r.other = new_plugin(cv, NULL, 0, false);
  CHECK(call(r.self, "roundtrip", "x") == 0);
  CHECK(r.ran);
  CHECK(extism_plugin_error(r.self) == NULL);
  CHECK_STR(output(r.self), "ok");
  extism_plugin_free(r.self);
  extism_plugin_free(r.other);
  extism_function_free(f);
  extism_function_free(ctx);
  free(hf.data);
  free(cv.data);
}

/* ---------------------------------------------------------------- compiled plugins, threads */

typedef struct {
  ExtismPlugin *plugin;
  int iterations;
  int failures;
} Worker;

static void *roundtrip_worker(void *arg) {
  Worker *w = arg;
  for (int i = 0; i < w->iterations; i++) {
    char input[32];
    snprintf(input, sizeof input, "call %d", i);
    if (call(w->plugin, "roundtrip", input) != 0) {
      w->failures++;
      continue;
    }
    /* another thread may start the next call on a shared plugin; compare only when private */
  }
  return NULL;
}

static void test_compiled(void) {
  Wasm hf = pdk("host_fns");
  Counter c = {0};
  ExtismFunction *reflect = reflect_fn(&c);
  ExtismFunction *ctx = context_fn();
  const ExtismFunction *fns[] = {reflect, ctx};
  char *err = NULL;
  ExtismCompiledPlugin *compiled = extism_compiled_plugin_new(hf.data, hf.len, fns, 2, false, &err);
  CHECK(compiled != NULL && err == NULL);
  extism_function_free(reflect);
  extism_function_free(ctx);

  ExtismPlugin *a = extism_plugin_new_from_compiled(compiled, &err);
  ExtismPlugin *b = extism_plugin_new_from_compiled(compiled, &err);
  CHECK(a != NULL && b != NULL && err == NULL);
  CHECK(memcmp(extism_plugin_id(a), extism_plugin_id(b), 16) != 0);

  /* the plugins of one compiled plugin share its host functions, in parallel */
  Worker wa = {a, 50, 0}, wb = {b, 50, 0};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, roundtrip_worker, &wa);
  pthread_create(&tb, NULL, roundtrip_worker, &wb);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(wa.failures == 0 && wb.failures == 0);
  CHECK(c.calls == 100);

  /* plugins outlive the compiled plugin; user data goes with the last of them */
  extism_compiled_plugin_free(compiled);
  CHECK(c.freed == 0);
  CHECK(call(a, "roundtrip", "still here") == 0);
  CHECK_STR(output(a), "STILL HERE");
  extism_plugin_free(a);
  CHECK(c.freed == 0);
  CHECK(call(b, "roundtrip", "b") == 0);
  CHECK_STR(output(b), "B");
  extism_plugin_free(b);
  CHECK(c.freed == 1);
  free(hf.data);
}

typedef struct {
  ExtismPlugin *plugin;
  int iterations;
  int failures;
} Counting;

static void *count_worker(void *arg) {
  Counting *w = arg;
  for (int i = 0; i < w->iterations; i++)
    if (call(w->plugin, "count_calls", "") != 0)
      w->failures++;
  return NULL;
}

static void test_shared_plugin_threads(void) {
  Wasm faults = pdk("faults");
  ExtismPlugin *p = new_plugin(faults, NULL, 0, false);
  Counting w = {p, 100, 0};
  pthread_t t1, t2;
  pthread_create(&t1, NULL, count_worker, &w);
  pthread_create(&t2, NULL, count_worker, &w);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  CHECK(w.failures == 0);
  /* the calls ran one at a time: every increment counted */
  CHECK(call(p, "count_calls", "") == 0);
  CHECK_STR(output(p), "201");
  extism_plugin_free(p);
  free(faults.data);
}

/* ---------------------------------------------------------------- cancel, timeout, fuel */

typedef struct {
  const ExtismCancelHandle *handle;
  atomic_int done;
  int cancels;
} Canceller;

static void *cancel_until_done(void *arg) {
  Canceller *c = arg;
  sleep_ms(200);
  /* a cancel before the call starts is forgotten, so keep cancelling until it ends */
  while (!c->done) {
    if (extism_plugin_cancel(c->handle))
      c->cancels++;
    sleep_ms(50);
  }
  return NULL;
}

static void test_cancel(void) {
  Wasm faults = pdk("faults");
  ExtismPlugin *p = new_plugin(faults, NULL, 0, false);
  const ExtismCancelHandle *h = extism_plugin_cancel_handle(p);
  CHECK(h != NULL);
  CHECK(extism_plugin_cancel_handle(p) == h);
  CHECK(extism_plugin_cancel_handle(NULL) == NULL);
  CHECK(!extism_plugin_cancel(NULL));

  /* cancelling an idle plugin does not affect the next call */
  CHECK(extism_plugin_cancel(h));
  CHECK(call(p, "count_calls", "") == 0);
  CHECK_STR(output(p), "1");

  Canceller c = {h, 0, 0};
  pthread_t t;
  pthread_create(&t, NULL, cancel_until_done, &c);
  double start = now_seconds();
  int32_t rc = call(p, "loop_forever", "");
  c.done = 1;
  pthread_join(t, NULL);
  CHECK(rc == 134);
  CHECK_STR(extism_plugin_error(p), "timeout");
  CHECK(c.cancels >= 1);
  CHECK(now_seconds() - start < 30);
  /* the plugin stays usable */
  CHECK(call(p, "count_calls", "") == 0);
  CHECK_STR(output(p), "2");
  extism_plugin_free(p);

  /* timeout_ms from the manifest */
  char manifest[8192];
  snprintf(manifest, sizeof manifest, "{\"wasm\": [{\"path\": \"%s\"}], \"timeout_ms\": 100}",
           path_of("rust/wasm/faults.wasm"));
  Wasm m = {(uint8_t *)manifest, strlen(manifest)};
  p = new_plugin(m, NULL, 0, false);
  CHECK(call(p, "loop_forever", "") == 134);
  CHECK_STR(extism_plugin_error(p), "timeout");
  extism_plugin_free(p);
  free(faults.data);
}

static void test_fuel(void) {
  Wasm faults = pdk("faults");
  char *err = NULL;
  ExtismPlugin *p =
      extism_plugin_new_with_fuel_limit(faults.data, faults.len, NULL, 0, false, 10000000, &err);
  CHECK(p != NULL && err == NULL);
  CHECK(call(p, "loop_forever", "") == -1);
  CHECK_STR(extism_plugin_error(p), "plugin ran out of fuel");
  /* refilled for every call */
  CHECK(call(p, "count_calls", "") == 0);
  CHECK_STR(output(p), "1");
  extism_plugin_free(p);

  p = extism_plugin_new_with_fuel_limit(faults.data, faults.len, NULL, 0, false, 0, &err);
  CHECK(p != NULL);
  CHECK(call(p, "count_calls", "") == -1);
  CHECK_STR(extism_plugin_error(p), "plugin ran out of fuel");
  extism_plugin_free(p);

  ExtismCompiledPlugin *c =
      extism_compiled_plugin_new_with_fuel_limit(faults.data, faults.len, NULL, 0, false, 10000000, &err);
  CHECK(c != NULL && err == NULL);
  ExtismPlugin *a = extism_plugin_new_from_compiled(c, &err);
  CHECK(a != NULL);
  CHECK(call(a, "loop_forever", "") == -1);
  CHECK_STR(extism_plugin_error(a), "plugin ran out of fuel");
  CHECK(call(a, "count_calls", "") == 0);
  extism_plugin_free(a);
  extism_compiled_plugin_free(c);
  free(faults.data);
}

/* ---------------------------------------------------------------- WASI, HTTP headers */

static void test_wasi(void) {
  Wasm w = pdk("wasi_stdout");
  ExtismPlugin *p = new_plugin(w, NULL, 0, true);
  CHECK(call(p, "hello", "") == 0);
  CHECK_STR(output(p), "done");
  CHECK(call(p, "exit_code", "3") == 3);
  CHECK(extism_plugin_error(p) != NULL);
  CHECK(call(p, "exit_code", "0") == 0);
  CHECK(extism_plugin_error(p) == NULL);
  extism_plugin_allow_http_response_headers(p);
  extism_plugin_allow_http_response_headers(NULL);
  CHECK(call(p, "hello", "") == 0);
  extism_plugin_free(p);
  free(w.data);
}

/* ---------------------------------------------------------------- logging */

static char drained[1 << 20];
static size_t drained_len;
static int drained_lines, drained_bad;

static void drain_handler(const char *line, ExtismSize len) {
  drained_lines++;
  if (len == 0 || line[len - 1] != '\n' || line[len] != 0 || strlen(line) != len)
    drained_bad++;
  if (drained_len + len < sizeof drained) {
    memcpy(drained + drained_len, line, len);
    drained_len += len;
    drained[drained_len] = 0;
  }
}

static void drain(void) {
  drained_len = 0;
  drained[0] = 0;
  drained_lines = drained_bad = 0;
  extism_log_drain(drain_handler);
}

/* Runs logging.wasm's log_all on a fresh plugin; returns the plugin id as text. */
static const char *log_all(void) {
  static char id[37];
  Wasm w = pdk("logging");
  ExtismPlugin *p = new_plugin(w, NULL, 0, false);
  CHECK(call(p, "log_all", "") == 0);
  CHECK_STR(output(p), "ok");
  const uint8_t *b = extism_plugin_id(p);
  snprintf(id, sizeof id,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  extism_plugin_free(p);
  free(w.data);
  return id;
}

static void check_levels(const char *levels) {
  static const char *names[] = {"trace", "debug", "info", "warn", "error"};
  for (int i = 0; i < 5; i++) {
    char msg[64];
    snprintf(msg, sizeof msg, "extism::pdk: %s message", names[i]);
    int want = levels[i] == '1';
    if (!!contains(drained, msg) != want)
      fprintf(stderr, "  %s message: want %s in\n%s\n", names[i], want ? "present" : "absent",
              drained);
    CHECK(!!contains(drained, msg) == want);
  }
}

static void test_logging_custom_info(void) {
  /* nothing is buffered before a sink exists, and guests see logging off */
  drain();
  CHECK(drained_lines == 0);
  log_all();
  drain();
  CHECK(drained_lines == 0);

  /* failures that must not install anything (or abort) */
  CHECK(!extism_log_custom("\xff"));
  CHECK(!extism_log_file(NULL, "\xff"));
  CHECK(!extism_log_file("\xff", "info"));
  CHECK(!extism_log_file("/nonexistent-directory/extism.log", "info"));

  CHECK(extism_log_custom("info"));
  CHECK(!extism_log_custom("trace"));
  CHECK(!extism_log_file("stderr", "trace"));
  extism_log_drain(NULL);

  const char *id = log_all();
  drain();
  check_levels("00111");
  CHECK(drained_bad == 0);
  CHECK(drained_lines >= 3);
  char field[64];
  snprintf(field, sizeof field, "plugin=\"%s\"", id);
  CHECK_CONTAINS(drained, field);
  CHECK_CONTAINS(drained, " INFO extism::pdk: info message");
  CHECK_CONTAINS(drained, " WARN extism::pdk: warn message");
  CHECK_CONTAINS(drained, "ERROR extism::pdk: error message");
  /* drained lines are gone */
  drain();
  CHECK(!contains(drained, "info message"));
}

/* ---------------------------------------------------------------- misuse, sizes, shared plugins */

/* Every object function given what a failed constructor returned (NULL), NULL errmsg on
 * failure from every constructor, invalid UTF-8 in every string argument. */
static void test_misuse(void) {
  char *err = NULL;
  const uint8_t junk[] = "not wasm";
  ExtismPlugin *p = extism_plugin_new(junk, sizeof junk - 1, NULL, 0, false, &err);
  CHECK(p == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));
  err = NULL;
  CHECK(extism_plugin_call(p, "run", junk, 3) == -1);
  CHECK(extism_plugin_call_with_host_context(p, "run", junk, 3, &err) == -1);
  CHECK(extism_plugin_error(p) == NULL);
  CHECK(extism_error(p) == NULL);
  CHECK(extism_plugin_output_length(p) == 0);
  CHECK(extism_plugin_output_data(p) == NULL);
  CHECK(!extism_plugin_reset(p));
  CHECK(!extism_plugin_function_exists(p, "run"));
  CHECK(!extism_plugin_config(p, (const uint8_t *)"{}", 2));
  CHECK(extism_plugin_id(p) == NULL);
  CHECK(extism_plugin_cancel_handle(p) == NULL);
  CHECK(!extism_plugin_cancel(extism_plugin_cancel_handle(p)));
  extism_plugin_allow_http_response_headers(p);
  extism_plugin_free(p);

  ExtismCompiledPlugin *c = extism_compiled_plugin_new(junk, sizeof junk - 1, NULL, 0, false, &err);
  CHECK(c == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));
  err = NULL;
  CHECK(extism_plugin_new_from_compiled(c, &err) == NULL);
  CHECK(errmsg_starts_with(err, CREATE, NULL));
  err = NULL;
  extism_compiled_plugin_free(c);

  /* NULL errmsg on failure, from every constructor */
  CHECK(extism_plugin_new(junk, 8, NULL, 0, false, NULL) == NULL);
  CHECK(extism_plugin_new_with_fuel_limit(junk, 8, NULL, 0, false, 1, NULL) == NULL);
  CHECK(extism_compiled_plugin_new(junk, 8, NULL, 0, false, NULL) == NULL);
  CHECK(extism_compiled_plugin_new_with_fuel_limit(NULL, 8, NULL, 0, false, 1, NULL) == NULL);
  CHECK(extism_plugin_new_from_compiled(NULL, NULL) == NULL);
  /* NULL wasm with a function array: refused, the functions consumed (as upstream) */
  Counter cnt = {0};
  ExtismFunction *f = reflect_fn(&cnt);
  const ExtismFunction *fns[] = {f};
  CHECK(extism_plugin_new(NULL, 100, fns, 1, false, &err) == NULL);
  CHECK(errmsg_starts_with(err, COMPILE, NULL));
  err = NULL;
  CHECK(cnt.freed == 1);
  CHECK(extism_compiled_plugin_new(NULL, 0, fns, 1, false, &err) == NULL);
  CHECK_STR(err, "Function cannot be registered with multiple different Plugins");
  extism_plugin_new_error_free(err);
  err = NULL;
  extism_function_free(f);
  CHECK(cnt.freed == 1);

  /* invalid UTF-8 function names, namespaces, func_name, config */
  ExtismValType i64[] = {ExtismValType_I64};
  CHECK(extism_function_new("\xc3\x28", i64, 1, i64, 1, noop_fn, NULL, NULL) == NULL);
  CHECK(extism_function_new("ok\xed\xa0\x80", NULL, 0, NULL, 0, noop_fn, NULL, NULL) == NULL);
  f = extism_function_new("host_reflect", i64, 1, i64, 1, noop_fn, NULL, NULL);
  CHECK(f != NULL);
  extism_function_set_namespace(f, "\xf0\x28\x8c\x28");
  extism_function_set_namespace(f, "");
  extism_function_free(f);
  Wasm e = pdk("echo");
  p = new_plugin(e, NULL, 0, false);
  CHECK(extism_plugin_call(p, "\xc3\x28", junk, 1) == -1);
  CHECK(extism_plugin_error(p) != NULL);
  CHECK(extism_plugin_output_length(p) == 0);
  CHECK(extism_plugin_call(p, "ech\xf0", NULL, 0) == -1);
  CHECK(!extism_plugin_function_exists(p, "ech\xf0"));
  const char *bad_json = "{\"k\": \"\xff\"}";
  CHECK(!extism_plugin_config(p, (const uint8_t *)bad_json, strlen(bad_json)));
  const char *bad_key = "{\"\xc3\x28\": \"v\"}";
  CHECK(!extism_plugin_config(p, (const uint8_t *)bad_key, strlen(bad_key)));
  CHECK(!extism_plugin_config(p, (const uint8_t *)"[]", 2));
  CHECK(!extism_plugin_config(p, (const uint8_t *)"{\"k\": 1}", 8));

  /* zero-length input with a non-NULL pointer is empty input */
  CHECK(extism_plugin_call(p, "echo", junk, 0) == 0);
  CHECK(extism_plugin_output_length(p) == 0);
  CHECK(extism_plugin_output_data(p) != NULL);
  CHECK(extism_plugin_error(p) == NULL);

  /* 64 MiB in, the same 64 MiB out; then normal sizes again */
  size_t big = (size_t)64 << 20;
  uint8_t *in = malloc(big);
  CHECK(in != NULL);
  if (in) {
    for (size_t i = 0; i < big; i++)
      in[i] = (uint8_t)((i * 2654435761u) >> 13);
    CHECK(extism_plugin_call(p, "echo", in, big) == 0);
    CHECK(extism_plugin_output_length(p) == big);
    const uint8_t *out = extism_plugin_output_data(p);
    CHECK(out != NULL && memcmp(out, in, big) == 0);
    CHECK(call(p, "echo", "small") == 0);
    CHECK_STR(output(p), "small");

    /* more than max_pages allows: an error, not a crash, and the plugin stays usable */
    char manifest[8192];
    snprintf(manifest, sizeof manifest,
             "{\"wasm\": [{\"path\": \"%s\"}], \"memory\": {\"max_pages\": 64}}",
             path_of("rust/wasm/echo.wasm"));
    Wasm m = {(uint8_t *)manifest, strlen(manifest)};
    ExtismPlugin *small = new_plugin(m, NULL, 0, false);
    CHECK(extism_plugin_call(small, "echo", in, big) != 0);
    CHECK(extism_plugin_error(small) != NULL && strlen(extism_plugin_error(small)) > 0);
    CHECK(call(small, "echo", "after") == 0);
    CHECK_STR(output(small), "after");
    extism_plugin_free(small);
    free(in);
  }
  extism_plugin_free(p);
  free(e.data);
}

/* Calls on one plugin from many threads, with no lock of the caller's: each host function
 * call must see its own call's input and host context (the library serialises the calls). */
typedef struct {
  ExtismPlugin *plugin;
  pthread_t self;
  int index, iterations, failures, mixed;
  char expect[64];
  char seen[64];
  size_t seen_len;
} Recorder;

static atomic_int recorded;

static void record_fn(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in,
                      ExtismVal *out, ExtismSize n_out, void *data) {
  (void)data;
  recorded++;
  if (n_in != 1 || n_out != 1)
    return;
  Recorder *r = extism_current_plugin_host_context(cp);
  ExtismMemoryHandle h = in[0].v.i64;
  ExtismSize len = extism_current_plugin_memory_length(cp, h);
  if (r && pthread_equal(r->self, pthread_self()) && len < sizeof r->seen) {
    memcpy(r->seen, extism_current_plugin_memory(cp) + h, len);
    r->seen_len = len;
  } else if (r) {
    r->mixed++;
  }
  out[0].v.i64 = h;
}

static void *record_worker(void *arg) {
  Recorder *r = arg;
  r->self = pthread_self();
  for (int i = 0; i < r->iterations; i++) {
    int n = snprintf(r->expect, sizeof r->expect, "thread %d call %d", r->index, i);
    r->seen_len = 0;
    if (extism_plugin_call_with_host_context(r->plugin, "roundtrip", (const uint8_t *)r->expect,
                                             n, r) != 0 ||
        r->seen_len != (size_t)n || memcmp(r->seen, r->expect, n) != 0)
      r->failures++;
  }
  return NULL;
}

static void test_threads_one_plugin(void) {
  Wasm hf = pdk("host_fns");
  ExtismValType ptr[] = {EXTISM_PTR};
  ExtismFunction *rec = extism_function_new("host_reflect", ptr, 1, ptr, 1, record_fn, NULL, NULL);
  ExtismFunction *ctx = context_fn();
  const ExtismFunction *fns[] = {rec, ctx};
  ExtismPlugin *p = new_plugin(hf, fns, 2, false);
  enum { THREADS = 8, CALLS = 200 };
  Recorder r[THREADS];
  pthread_t t[THREADS];
  recorded = 0;
  for (int i = 0; i < THREADS; i++) {
    memset(&r[i], 0, sizeof r[i]);
    r[i].plugin = p;
    r[i].index = i;
    r[i].iterations = CALLS;
    pthread_create(&t[i], NULL, record_worker, &r[i]);
  }
  int failures = 0, mixed = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    failures += r[i].failures;
    mixed += r[i].mixed;
  }
  CHECK(failures == 0);
  CHECK(mixed == 0);
  CHECK(recorded == THREADS * CALLS);
  extism_plugin_free(p);
  extism_function_free(rec);
  extism_function_free(ctx);

  /* count_calls keeps a total in a var: 4 threads x 250 unsynchronised calls all count */
  Wasm faults = pdk("faults");
  p = new_plugin(faults, NULL, 0, false);
  Counting w[4];
  pthread_t tw[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (Counting){p, 250, 0};
    pthread_create(&tw[i], NULL, count_worker, &w[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(tw[i], NULL);
    CHECK(w[i].failures == 0);
  }
  CHECK(call(p, "count_calls", "") == 0);
  CHECK_STR(output(p), "1001");
  extism_plugin_free(p);
  free(faults.data);
  free(hf.data);
}

/* free_user_data runs exactly once, when the last owner goes, whatever the order of frees */
static void test_user_data_owners(void) {
  Wasm hf = pdk("host_fns");
  char *err = NULL;

  /* a compiled plugin never instantiated */
  Counter c1 = {0};
  ExtismFunction *f = reflect_fn(&c1);
  ExtismFunction *ctx = context_fn();
  const ExtismFunction *fns[] = {f, ctx};
  ExtismCompiledPlugin *c = extism_compiled_plugin_new(hf.data, hf.len, fns, 2, false, &err);
  CHECK(c != NULL);
  extism_compiled_plugin_free(c);
  CHECK(c1.freed == 1);
  extism_function_free(f); /* after the owner is gone: frees only the wrapper */
  extism_function_free(ctx);
  CHECK(c1.freed == 1);

  /* one compiled plugin, four plugins, freed in mixed order with the compiled plugin second */
  Counter c2 = {0};
  f = reflect_fn(&c2);
  ctx = context_fn();
  fns[0] = f;
  fns[1] = ctx;
  c = extism_compiled_plugin_new(hf.data, hf.len, fns, 2, false, &err);
  CHECK(c != NULL);
  ExtismPlugin *ps[4];
  for (int i = 0; i < 4; i++) {
    ps[i] = extism_plugin_new_from_compiled(c, &err);
    CHECK(ps[i] != NULL);
  }
  extism_plugin_free(ps[2]);
  extism_compiled_plugin_free(c);
  extism_function_free(f);
  for (int i = 0; i < 4; i++)
    if (i != 2)
      CHECK(call(ps[i], "roundtrip", "x") == 0);
  extism_plugin_free(ps[0]);
  extism_plugin_free(ps[3]);
  CHECK(c2.freed == 0);
  CHECK(c2.calls == 3);
  extism_plugin_free(ps[1]);
  CHECK(c2.freed == 1);
  extism_function_free(ctx);
  CHECK(c2.freed == 1);

  /* a plugin whose creation failed after compiling (WASI plugin without WASI) consumed the
   * functions, as upstream: their user data is released then, the wrapper frees nothing more */
  Counter c3 = {0};
  f = reflect_fn(&c3);
  fns[0] = f;
  Wasm wasi = pdk("wasi_stdout");
  CHECK(extism_plugin_new(wasi.data, wasi.len, fns, 1, false, &err) == NULL);
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(c3.freed == 1);
  extism_function_free(f);
  CHECK(c3.freed == 1);
  free(wasi.data);
  free(hf.data);
}

static int run_main(void) {
  test_version();
  test_logging_custom_info();
  test_constructor_errors();
  test_calls();
  test_config();
  test_id();
  test_reset();
  test_function_new();
  test_host_functions();
  test_attach_rules();
  test_value_types_and_namespaces();
  test_reentrancy();
  test_compiled();
  test_shared_plugin_threads();
  test_cancel();
  test_fuel();
  test_wasi();
  test_misuse();
  test_threads_one_plugin();
  test_user_data_owners();
  drain();
  return 0;
}

/* A plugin whose guest fails a call with error_set("this call failed"). */
static void fail_once(void) {
  Wasm w = pdk("faults");
  ExtismPlugin *p = new_plugin(w, NULL, 0, false);
  CHECK(call(p, "fail", "") == -1);
  extism_plugin_free(p);
  free(w.data);
}

static void run_log_filter(void) {
  CHECK(extism_log_custom("extism=trace,cranelift=off"));
  log_all();
  drain();
  check_levels("11111");
  CHECK(drained_bad == 0);
  /* the runtime's own events: each call starting and finishing */
  CHECK_CONTAINS(drained, "call to log_all started");
  CHECK_CONTAINS(drained, "call to log_all finished");
}

/* extism_log_custom("trace"): the runtime's own events reach the drain, also from a failed
 * constructor, and a failed call is an error line naming the function */
static void run_log_trace(void) {
  CHECK(extism_log_custom("trace"));
  char *err = NULL;
  CHECK(extism_plugin_new((const uint8_t *)"", 0, NULL, 0, false, &err) == NULL);
  extism_plugin_new_error_free(err);
  drain();
  CHECK(drained_lines > 0);
  CHECK(drained_bad == 0);
  CHECK_CONTAINS(drained, "TRACE extism::manifest: loading 0 bytes as a manifest");

  const char *id = log_all();
  drain();
  char field[64];
  snprintf(field, sizeof field, "plugin=%s", id);
  CHECK_CONTAINS(drained, "DEBUG extism::plugin: call to log_all started");
  CHECK_CONTAINS(drained, "DEBUG extism::plugin: call to log_all finished");
  CHECK_CONTAINS(drained, field);
  check_levels("11111");

  fail_once();
  drain();
  CHECK_CONTAINS(drained,
                 "ERROR extism::plugin: call to fail returned with error message: this call failed");
}

static void run_log_bad_filter(void) {
  CHECK(extism_log_custom("[,=="));
  log_all();
  drain();
  check_levels("00001");
}

static void run_log_off(void) {
  CHECK(extism_log_custom("off"));
  log_all();
  drain();
  CHECK(drained_lines == 0);
}

/* NULL levels mean "error"; a second NULL install is refused */
static void run_log_null(void) {
  CHECK(extism_log_custom(NULL));
  CHECK(!extism_log_custom(NULL));
  CHECK(!extism_log_file(NULL, NULL));
  extism_log_drain(NULL);
  log_all();
  drain();
  check_levels("00001");
}

static void run_log_file(const char *path) {
  CHECK(extism_log_file(path, "warn"));
  CHECK(!extism_log_custom("warn"));
  log_all();
  fail_once();
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  if (!f)
    return;
  drained_len = fread(drained, 1, sizeof drained - 1, f);
  drained[drained_len] = 0;
  fclose(f);
  check_levels("00011");
  /* a failed call is an error line, with upstream's wording */
  CHECK_CONTAINS(drained, "call to fail returned with error message: this call failed");
  CHECK(!contains(drained, "call to log_all"));
  CHECK(!contains(drained, "\x1b["));
  CHECK(drained_len > 0 && drained[drained_len - 1] == '\n');
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s TESTDATA_DIR MODE [ARG]\n", argv[0]);
    return 2;
  }
  testdata = argv[1];
  const char *mode = argv[2];
  if (strcmp(mode, "main") == 0)
    run_main();
  else if (strcmp(mode, "log-filter") == 0)
    run_log_filter();
  else if (strcmp(mode, "log-trace") == 0)
    run_log_trace();
  else if (strcmp(mode, "log-bad-filter") == 0)
    run_log_bad_filter();
  else if (strcmp(mode, "log-off") == 0)
    run_log_off();
  else if (strcmp(mode, "log-null") == 0)
    run_log_null();
  else if (strcmp(mode, "log-file") == 0 && argc > 3)
    run_log_file(argv[3]);
  else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  printf("%d passed, %d failed\n", (int)passed, (int)failed);
  return failed ? 1 : 0;
}
