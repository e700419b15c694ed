/*
 * Create/call/free cycles through the C API, for a leak checker (scripts/leak-check.sh runs it
 * under valgrind) and for RSS measurements (tests/resources.rs).
 *
 * Usage: leak_cycles TESTDATA_DIR CYCLES [rss]
 * Each cycle: a plugin with host functions carrying malloc'd user data (called, then freed in
 * both orders), a compiled plugin shared by two plugins, a fuel-limited plugin running out of
 * fuel, and failures (bad wasm, bad manifest, missing function, trap, guest error, bad config).
 * Compiled modules are cached only while some plugin uses them, so two compiled plugins made
 * before the first cycle keep the modules alive (as a host that loads plugins repeatedly would):
 * the cycles measure plugin life cycles, not the compiler. At the end every user data must have
 * been freed exactly once. With "rss", prints
 * "rss_kib AFTER_WARMUP AFTER_ALL" (warm-up: the first tenth of the cycles, at least 10).
 * Exits non-zero if anything went wrong.
 */
#include "extism.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *testdata;
static atomic_int given, freed, failures;

#define EXPECT(cond)                                                                               \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);                           \
    }                                                                                              \
  } while (0)

static uint8_t *read_file(const char *rel, size_t *len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", testdata, rel);
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n);
  if (fread(buf, 1, n, f) != (size_t)n)
    exit(2);
  fclose(f);
  *len = n;
  return buf;
}

static void free_data(void *data) {
  freed++;
  free(data);
}

static void *new_data(void) {
  given++;
  return malloc(32);
}

/* host_reflect: a copy of the input block */
static void reflect(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in, ExtismVal *out,
                    ExtismSize n_out, void *data) {
  (void)n_in, (void)n_out;
  memset(data, 'x', 32);
  ExtismMemoryHandle h = in[0].v.i64;
  ExtismSize len = extism_current_plugin_memory_length(cp, h);
  ExtismMemoryHandle r = extism_current_plugin_memory_alloc(cp, len);
  memcpy(extism_current_plugin_memory(cp) + r, extism_current_plugin_memory(cp) + h, len);
  extism_current_plugin_memory_free(cp, h);
  out[0].v.i64 = r;
}

static void context(ExtismCurrentPlugin *cp, const ExtismVal *in, ExtismSize n_in, ExtismVal *out,
                    ExtismSize n_out, void *data) {
  (void)in, (void)n_in, (void)n_out, (void)data;
  ExtismMemoryHandle r = extism_current_plugin_memory_alloc(cp, 2);
  memcpy(extism_current_plugin_memory(cp) + r, "hi", 2);
  out[0].v.i64 = r;
}

static void host_functions(ExtismFunction **fns) {
  ExtismValType ptr[] = {EXTISM_PTR};
  fns[0] = extism_function_new("host_reflect", ptr, 1, ptr, 1, reflect, new_data(), free_data);
  fns[1] = extism_function_new("host_context", NULL, 0, ptr, 1, context, new_data(), free_data);
}

static int output_is(ExtismPlugin *p, const char *want) {
  size_t n = strlen(want);
  return extism_plugin_output_length(p) == n && memcmp(extism_plugin_output_data(p), want, n) == 0;
}

static uint8_t *host_fns, *faults;
static size_t host_fns_len, faults_len;

static void cycle(int i) {
  char *err = NULL;
  char input[64];
  int n = snprintf(input, sizeof input, "cycle %d", i);

  /* a plugin with host functions; the functions freed after the plugin in even cycles */
  ExtismFunction *fns[2];
  host_functions(fns);
  ExtismPlugin *p =
      extism_plugin_new(host_fns, host_fns_len, (const ExtismFunction **)fns, 2, false, &err);
  EXPECT(p != NULL && err == NULL);
  if (i % 2) {
    extism_function_free(fns[0]);
    extism_function_free(fns[1]);
  }
  EXPECT(extism_plugin_call(p, "roundtrip", (const uint8_t *)input, n) == 0);
  EXPECT(output_is(p, input));
  EXPECT(extism_plugin_call(p, "missing", NULL, 0) == -1);
  EXPECT(extism_plugin_error(p) != NULL);
  const char *cfg = "{\"a\": \"b\", \"c\": null}";
  EXPECT(extism_plugin_config(p, (const uint8_t *)cfg, strlen(cfg)));
  EXPECT(extism_plugin_reset(p));
  extism_plugin_free(p);
  if (i % 2 == 0) {
    extism_function_free(fns[0]);
    extism_function_free(fns[1]);
  }

  /* a compiled plugin with host functions shared by two plugins, freed before them */
  host_functions(fns);
  ExtismCompiledPlugin *c =
      extism_compiled_plugin_new(host_fns, host_fns_len, (const ExtismFunction **)fns, 2, false, &err);
  EXPECT(c != NULL && err == NULL);
  extism_function_free(fns[0]);
  extism_function_free(fns[1]);
  ExtismPlugin *a = extism_plugin_new_from_compiled(c, &err);
  ExtismPlugin *b = extism_plugin_new_from_compiled(c, &err);
  EXPECT(a != NULL && b != NULL && err == NULL);
  extism_compiled_plugin_free(c);
  EXPECT(extism_plugin_call(a, "roundtrip", (const uint8_t *)input, n) == 0);
  EXPECT(extism_plugin_call(b, "read_context", NULL, 0) == 0);
  EXPECT(output_is(b, "hi"));
  extism_plugin_free(a);
  extism_plugin_free(b);

  /* failures: traps, guest errors, fuel, bad wasm and manifests, attach errors */
  p = extism_plugin_new_with_fuel_limit(faults, faults_len, NULL, 0, false, 100000, &err);
  EXPECT(p != NULL);
  EXPECT(extism_plugin_call(p, "loop_forever", NULL, 0) == -1);
  EXPECT(extism_plugin_call(p, "trap", NULL, 0) != 0);
  EXPECT(extism_plugin_call(p, "fail", NULL, 0) != 0);
  EXPECT(extism_plugin_error(p) != NULL);
  extism_plugin_free(p);
  EXPECT(extism_plugin_new((const uint8_t *)"junk", 4, NULL, 0, false, &err) == NULL);
  EXPECT(err != NULL);
  extism_plugin_new_error_free(err);
  err = NULL;
  const char *manifest = "{\"wasm\": [{\"path\": \"/nonexistent.wasm\"}]}";
  EXPECT(extism_plugin_new((const uint8_t *)manifest, strlen(manifest), NULL, 0, false, &err) ==
         NULL);
  extism_plugin_new_error_free(err);
  err = NULL;
  host_functions(fns);
  /* host_fns without its second function: an import error; fns[0] stays ours */
  EXPECT(extism_plugin_new(host_fns, host_fns_len, (const ExtismFunction **)fns, 1, false, &err) ==
         NULL);
  extism_plugin_new_error_free(err);
  err = NULL;
  extism_function_free(fns[0]);
  extism_function_free(fns[1]);
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s TESTDATA_DIR CYCLES [rss]\n", argv[0]);
    return 2;
  }
  testdata = argv[1];
  int cycles = atoi(argv[2]);
  int rss = argc > 3 && strcmp(argv[3], "rss") == 0;
  host_fns = read_file("rust/wasm/host_fns.wasm", &host_fns_len);
  faults = read_file("rust/wasm/faults.wasm", &faults_len);
  ExtismFunction *fns[2];
  host_functions(fns);
  char *err = NULL;
  ExtismCompiledPlugin *keep_host_fns = extism_compiled_plugin_new(
      host_fns, host_fns_len, (const ExtismFunction **)fns, 2, false, &err);
  ExtismCompiledPlugin *keep_faults =
      extism_compiled_plugin_new_with_fuel_limit(faults, faults_len, NULL, 0, false, 1, &err);
  EXPECT(keep_host_fns != NULL && keep_faults != NULL && err == NULL);
  extism_function_free(fns[0]);
  extism_function_free(fns[1]);
  int warmup = cycles / 10 < 10 ? 10 : cycles / 10;
  long after_warmup = 0;
  for (int i = 0; i < cycles; i++) {
    cycle(i);
    if (rss && i + 1 == warmup)
      after_warmup = rss_kib();
  }
  if (rss)
    printf("rss_kib %ld %ld\n", after_warmup, rss_kib());
  extism_compiled_plugin_free(keep_host_fns);
  extism_compiled_plugin_free(keep_faults);
  free(host_fns);
  free(faults);
  EXPECT(given == freed);
  printf("%d cycles, user data given %d, freed %d, %d failures\n", cycles, (int)given, (int)freed,
         (int)failures);
  return failures ? 1 : 0;
}
