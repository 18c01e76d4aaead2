/* A C program that hosts libteflon.so the way TensorFlow Lite does, with a minimal mock of the
 * TfLiteContext calls: dlopen (RTLD_LOCAL) -> tflite_plugin_create_delegate -> Prepare ->
 * ReplaceNodeSubsetsWithDelegateKernels -> init / prepare -> invoke x N (main thread, then a
 * second thread, with the buffers moved in between like an arena) -> free -> destroy.
 *
 * No Python in this process until the delegate starts it. The graph comes from a file written by
 * tests/frontends/teflon/test_delegate_c_host.py (format in graph_file.py there), with the
 * inputs and the expected outputs (LiteRT BUILTIN_REF).
 *
 * usage: teflon_host LIBRARY GRAPH INVOKES [key=value ...]
 * prints: "ok invokes=N invoke_us=X roundtrip_us=Y" and exits 0, or a reason and exits 1.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tflite_abi.h"

#define MAX_TENSORS 64
#define MAX_NODES 16

typedef TfLiteDelegate *(*create_fn)(const char *const *, const char *const *, size_t,
                                     void (*)(const char *));
typedef void (*destroy_fn)(TfLiteDelegate *);

struct graph {
   int tensor_count;
   TfLiteTensor tensors[MAX_TENSORS];
   TfLiteAffineQuantization affine[MAX_TENSORS];
   int node_count;
   TfLiteNode nodes[MAX_NODES];
   TfLiteRegistration regs[MAX_NODES];
   TfLiteIntArray *plan;
   TfLiteIntArray *inputs, *outputs;
   void *input_data[MAX_TENSORS];  /* graph input values, by position */
   void *expected[MAX_TENSORS];    /* expected graph outputs, by position */
   /* The delegate node TFLite would create. */
   TfLiteRegistration delegate_reg;
   TfLiteNode delegate_node;
   TfLiteDelegateParams params;
   bool replaced;
};

static struct graph g;
static TfLiteContext ctx;
static int reported_errors;

static void die(const char *fmt, ...)
{
   va_list ap;
   va_start(ap, fmt);
   vfprintf(stdout, fmt, ap);
   va_end(ap);
   fputc('\n', stdout);
   exit(1);
}

static void report_error(TfLiteContext *context, const char *fmt, ...)
{
   va_list ap;
   (void)context;
   va_start(ap, fmt);
   fputs("host: ReportError: ", stderr);
   vfprintf(stderr, fmt, ap);
   fputc('\n', stderr);
   va_end(ap);
   reported_errors++;
}

static void create_error(const char *message)
{
   fprintf(stderr, "host: create_delegate error: %s\n", message);
}

static TfLiteIntArray *int_array(int size)
{
   TfLiteIntArray *a = calloc(1, sizeof(TfLiteIntArray) + size * sizeof(int));
   a->size = size;
   return a;
}

/* -- the graph file (little-endian int32 fields, see graph_file.py) ----------------------- */

static FILE *graph_file;

static int32_t read_i32(void)
{
   int32_t v;
   if (fread(&v, sizeof(v), 1, graph_file) != 1)
      die("graph file truncated");
   return v;
}

static float read_f32(void)
{
   float v;
   if (fread(&v, sizeof(v), 1, graph_file) != 1)
      die("graph file truncated");
   return v;
}

static void *read_bytes(size_t n)
{
   void *p = malloc(n ? n : 1);
   if (n && fread(p, 1, n, graph_file) != n)
      die("graph file truncated");
   return p;
}

static TfLiteIntArray *read_int_array(void)
{
   int n = read_i32();
   TfLiteIntArray *a = int_array(n);
   for (int i = 0; i < n; i++)
      a->data[i] = read_i32();
   return a;
}

static void load_graph(const char *path)
{
   graph_file = fopen(path, "rb");
   if (!graph_file)
      die("cannot open %s", path);
   char magic[4];
   if (fread(magic, 1, 4, graph_file) != 4 || memcmp(magic, "TFHG", 4))
      die("%s is not a graph file", path);
   g.tensor_count = read_i32();
   if (g.tensor_count > MAX_TENSORS)
      die("too many tensors");
   for (int i = 0; i < g.tensor_count; i++) {
      TfLiteTensor *t = &g.tensors[i];
      t->type = read_i32();
      t->allocation_type = read_i32();
      t->dims = read_int_array();
      t->params.scale = read_f32();
      t->params.zero_point = read_i32();
      t->bytes = read_i32();
      t->buffer_handle = -1;
      int channels = read_i32();
      if (channels > 0) {
         TfLiteAffineQuantization *q = &g.affine[i];
         q->scale = calloc(1, sizeof(TfLiteFloatArray) + channels * sizeof(float));
         q->scale->size = channels;
         for (int c = 0; c < channels; c++)
            q->scale->data[c] = read_f32();
         q->zero_point = int_array(channels);
         for (int c = 0; c < channels; c++)
            q->zero_point->data[c] = read_i32();
         q->quantized_dimension = read_i32();
         t->quantization.type = kTfLiteAffineQuantization;
         t->quantization.params = q;
      }
      t->name = "t";
      if (t->allocation_type == kTfLiteMmapRo)
         t->data.raw = read_bytes(t->bytes);
   }
   g.node_count = read_i32();
   if (g.node_count > MAX_NODES)
      die("too many nodes");
   g.plan = int_array(g.node_count);
   for (int i = 0; i < g.node_count; i++) {
      g.regs[i].builtin_code = read_i32();
      g.regs[i].version = read_i32();
      g.nodes[i].inputs = read_int_array();
      g.nodes[i].outputs = read_int_array();
      int size = read_i32();
      g.nodes[i].builtin_data = size ? read_bytes(size) : NULL;
      g.plan->data[i] = i;
   }
   g.inputs = read_int_array();
   g.outputs = read_int_array();
   for (int i = 0; i < g.inputs->size; i++)
      g.input_data[i] = read_bytes(g.tensors[g.inputs->data[i]].bytes);
   for (int i = 0; i < g.outputs->size; i++)
      g.expected[i] = read_bytes(g.tensors[g.outputs->data[i]].bytes);
   fclose(graph_file);
}

/* -- the mock context --------------------------------------------------------------------- */

static TfLiteStatus get_execution_plan(TfLiteContext *context, TfLiteIntArray **plan)
{
   (void)context;
   *plan = g.plan;
   return kTfLiteOk;
}

static TfLiteStatus get_node(TfLiteContext *context, int index, TfLiteNode **node,
                             struct TfLiteRegistration **reg)
{
   (void)context;
   if (index < 0 || index >= g.node_count)
      return kTfLiteError;
   *node = &g.nodes[index];
   *reg = &g.regs[index];
   return kTfLiteOk;
}

static bool contains(const TfLiteIntArray *a, int v)
{
   for (int i = 0; i < a->size; i++)
      if (a->data[i] == v)
         return true;
   return false;
}

/* One partition of all claimed nodes (enough for the graphs this host runs). Like TFLite,
 * input_tensors include constants; output_tensors are what leaves the partition. */
static TfLiteStatus replace(TfLiteContext *context, TfLiteRegistration registration,
                            const TfLiteIntArray *nodes, struct TfLiteDelegate *delegate)
{
   if (nodes->size != g.node_count)
      die("the delegate claimed %d of %d nodes", nodes->size, g.node_count);
   TfLiteIntArray *ins = int_array(MAX_TENSORS), *outs = int_array(MAX_TENSORS);
   ins->size = outs->size = 0;
   for (int n = 0; n < nodes->size; n++) {
      TfLiteNode *node = &g.nodes[nodes->data[n]];
      for (int i = 0; i < node->inputs->size; i++) {
         int t = node->inputs->data[i];
         bool produced = false;
         for (int m = 0; m < nodes->size; m++)
            produced |= contains(g.nodes[nodes->data[m]].outputs, t);
         if (t >= 0 && !produced && !contains(ins, t))
            ins->data[ins->size++] = t;
      }
      for (int o = 0; o < node->outputs->size; o++) {
         int t = node->outputs->data[o];
         if (contains(g.outputs, t))
            outs->data[outs->size++] = t;
      }
   }
   g.delegate_reg = registration;
   g.params.delegate = delegate;
   g.params.nodes_to_replace = int_array(nodes->size);
   memcpy(g.params.nodes_to_replace->data, nodes->data, nodes->size * sizeof(int));
   g.params.input_tensors = ins;
   g.params.output_tensors = outs;
   g.delegate_node.inputs = ins;
   g.delegate_node.outputs = outs;
   g.delegate_node.delegate = delegate;
   g.delegate_node.builtin_data = &g.params;
   g.delegate_node.user_data = registration.init(context, (const char *)&g.params, 0);
   if (g.delegate_node.user_data == NULL)
      return kTfLiteError;
   g.replaced = true;
   return kTfLiteOk;
}

/* "AllocateTensors": fresh buffers for every non-constant tensor, at new addresses each time. */
static void allocate(void)
{
   for (int i = 0; i < g.tensor_count; i++) {
      TfLiteTensor *t = &g.tensors[i];
      if (t->allocation_type == kTfLiteMmapRo)
         continue;
      void *old = t->data.raw;
      t->data.raw = calloc(1, t->bytes ? t->bytes : 1);
      free(old);
      t->allocation_type = kTfLiteArenaRw;
   }
   for (int i = 0; i < g.inputs->size; i++) {
      TfLiteTensor *t = &g.tensors[g.inputs->data[i]];
      memcpy(t->data.raw, g.input_data[i], t->bytes);
   }
}

static int check_outputs(void)
{
   for (int i = 0; i < g.outputs->size; i++) {
      TfLiteTensor *t = &g.tensors[g.outputs->data[i]];
      if (memcmp(t->data.raw, g.expected[i], t->bytes))
         return 1;
      memset(t->data.raw, 0, t->bytes); /* the next invoke must write it again */
   }
   return 0;
}

static double now_us(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct run {
   int invokes;
   int failures;
};

static void *invoke_loop(void *arg)
{
   struct run *r = arg;
   for (int i = 0; i < r->invokes; i++) {
      if (g.delegate_reg.invoke(&ctx, &g.delegate_node) != kTfLiteOk)
         r->failures++;
      else
         r->failures += check_outputs();
   }
   return NULL;
}

int main(int argc, char **argv)
{
   if (argc < 4)
      die("usage: %s LIBRARY GRAPH INVOKES [key=value ...]", argv[0]);
   load_graph(argv[2]);
   int invokes = atoi(argv[3]);

   const char *keys[8], *values[8];
   size_t count = 0;
   for (int i = 4; i < argc && count < 8; i++) {
      char *eq = strchr(argv[i], '=');
      if (!eq)
         die("option %s is not key=value", argv[i]);
      *eq = '\0';
      keys[count] = argv[i];
      values[count++] = eq + 1;
   }

   /* TFLite's external-delegate loader uses RTLD_LOCAL: libpython's symbols stay hidden. */
   void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
   if (!library)
      die("dlopen: %s", dlerror());
   create_fn create = (create_fn)dlsym(library, "tflite_plugin_create_delegate");
   destroy_fn destroy = (destroy_fn)dlsym(library, "tflite_plugin_destroy_delegate");
   if (!create || !destroy)
      die("the library lacks the external delegate symbols");

   double t0 = now_us();
   TfLiteDelegate *delegate = create(keys, values, count, create_error);
   double startup_ms = (now_us() - t0) / 1e3;
   if (!delegate)
      die("create_delegate failed");

   ctx.tensors_size = g.tensor_count;
   ctx.tensors = g.tensors;
   ctx.GetExecutionPlan = get_execution_plan;
   ctx.GetNodeAndRegistration = get_node;
   ctx.ReplaceNodeSubsetsWithDelegateKernels = replace;
   ctx.ReportError = report_error;

   if (delegate->Prepare(&ctx, delegate) != kTfLiteOk)
      die("Prepare failed");
   if (!g.replaced)
      die("the delegate claimed no nodes");
   allocate();
   if (g.delegate_reg.prepare(&ctx, &g.delegate_node) != kTfLiteOk)
      die("prepare failed");

   /* Half the invokes here, then "re-allocate" (new buffer addresses), then the rest from a
    * second thread. */
   struct run first = {invokes / 2, 0}, second = {invokes - invokes / 2, 0};
   t0 = now_us();
   invoke_loop(&first);
   double first_us = now_us() - t0;
   allocate();
   pthread_t thread;
   pthread_create(&thread, NULL, invoke_loop, &second);
   pthread_join(thread, NULL);
   if (first.failures || second.failures)
      die("%d of %d invokes failed or gave wrong outputs", first.failures + second.failures,
          invokes);

   /* A C -> Python -> C round trip that does (almost) nothing: free of a NULL kernel. */
   const int trips = 20000;
   t0 = now_us();
   for (int i = 0; i < trips; i++)
      g.delegate_reg.free(&ctx, NULL);
   double trip_us = (now_us() - t0) / trips;

   g.delegate_reg.free(&ctx, g.delegate_node.user_data);
   destroy(delegate);
   printf("ok invokes=%d invoke_us=%.1f roundtrip_us=%.3f startup_ms=%.1f errors=%d\n", invokes,
          first.invokes ? first_us / first.invokes : 0.0, trip_us, startup_ms, reported_errors);
   return 0;
}
