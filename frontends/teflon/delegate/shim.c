/* libteflon.so's C shim (Mesa: the exported half of src/gallium/frontends/teflon/tfl_device.c).
 *
 * It holds only what must be C: the two external-delegate entry points of
 * tflite/delegates/external/external_delegate_interface.h, starting Python when the host is not
 * a Python program, the by-value TfLiteRegistration, the variadic ReportError call and dladdr.
 * Options, node selection, partition kernels and logging are Python (device.py), reached
 * through the cffi-generated half of the library (build_ffi.py).
 */
#define _GNU_SOURCE
#include <Python.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tflite_abi.h"
#include "shim.h"

#define TEFLON_EXPORT __attribute__((visibility("default")))

/* Defined in Python through cffi (build_ffi.py: embedding_api and extern "Python+C"). */
TfLiteDelegate *teflon_py_create_delegate(const char *const *keys, const char *const *values,
                                          size_t count, void (*report_error)(const char *));
void teflon_py_destroy_delegate(TfLiteDelegate *delegate);
void *teflon_partition_init(TfLiteContext *context, const char *buffer, size_t length);
void teflon_partition_free(TfLiteContext *context, void *buffer);
TfLiteStatus teflon_partition_prepare(TfLiteContext *context, TfLiteNode *node);
TfLiteStatus teflon_partition_invoke(TfLiteContext *context, TfLiteNode *node);

/* The name TFLite shows for our nodes (Mesa: "Teflon Delegate"). */
static const char kernel_name[] = "Teflon Delegate";

static pthread_once_t python_once = PTHREAD_ONCE_INIT;
static char python_error[512];

/* The Python home for the libpython we are linked to: the first directory, from libpython's
 * own directory upwards, holding lib/pythonX.Y/os.py (pyenv: <prefix>/lib/libpython*.so;
 * Debian: /usr/lib/<triplet>/libpython*.so). Without a home, CPython derives its prefix from
 * "python3" on $PATH, which may be a different installation. */
static bool find_python_home(const char *libpython, char *home, size_t size)
{
   char dir[PATH_MAX];
   snprintf(dir, sizeof(dir), "%s", libpython);
   for (int level = 0; level < 4; level++) {
      char *slash = strrchr(dir, '/');
      if (slash == NULL || slash == dir)
         return false;
      *slash = '\0';
      char landmark[PATH_MAX + 32];
      struct stat st;
      snprintf(landmark, sizeof(landmark), "%s/lib/python%d.%d/os.py", dir, PY_MAJOR_VERSION,
               PY_MINOR_VERSION);
      if (stat(landmark, &st) == 0) {
         snprintf(home, size, "%s", dir);
         return true;
      }
   }
   return false;
}

static void fail(const char *what, PyStatus status)
{
   snprintf(python_error, sizeof(python_error), "teflon: cannot start Python: %s%s%s", what,
            status.err_msg ? ": " : "", status.err_msg ? status.err_msg : "");
}

/* Start CPython for a host that is not a Python program (run once). A Python host already has
 * an interpreter, and cffi then just runs our init code in it. */
static void start_python(void)
{
   if (Py_IsInitialized())
      return;

   /* A host that dlopen()s us RTLD_LOCAL (TFLite's external-delegate loader does) hides
    * libpython's symbols from the extension modules Python loads later (_cffi_backend, numpy):
    * make them global. The handle is deliberately kept: libpython stays for the process. */
   Dl_info info;
   char home[PATH_MAX] = "";
   if (dladdr((void *)&Py_Initialize, &info) && info.dli_fname) {
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
      find_python_home(info.dli_fname, home, sizeof(home));
   }

   PyConfig config;
   PyConfig_InitPythonConfig(&config);
   config.install_signal_handlers = 0; /* the host owns SIGINT and friends */
   config.parse_argv = 0;
   PyStatus status = PyStatus_Ok();
   /* TEFLON_PYTHON names an interpreter, e.g. a venv's bin/python: CPython then finds its
    * pyvenv.cfg and that environment's site-packages. */
   const char *python = getenv("TEFLON_PYTHON");
   if (python && *python)
      status = PyConfig_SetBytesString(&config, &config.executable, python);
   else if (home[0])
      status = PyConfig_SetBytesString(&config, &config.home, home);
   if (PyStatus_Exception(status)) {
      fail("configuration", status);
      PyConfig_Clear(&config);
      return;
   }
   status = Py_InitializeFromConfig(&config);
   PyConfig_Clear(&config);
   if (PyStatus_Exception(status)) {
      fail("initialization", status);
      return;
   }
   /* Release the GIL: every call into Python takes it with PyGILState_Ensure (cffi's stubs),
    * from whichever thread the host calls. */
   PyEval_SaveThread();
}

TEFLON_EXPORT TfLiteDelegate *
tflite_plugin_create_delegate(const char *const *options_keys,
                              const char *const *options_values, size_t num_options,
                              void (*report_error)(const char *))
{
   /* LiteRT's Python loader declares this argument as a C int (ctypes argtypes), which leaves
    * the upper half of the 64-bit register undefined. */
   num_options = (unsigned int)num_options;
   pthread_once(&python_once, start_python);
   if (python_error[0]) {
      if (report_error)
         report_error(python_error);
      else
         fprintf(stderr, "%s\n", python_error);
      return NULL;
   }
   return teflon_py_create_delegate(options_keys, options_values, num_options, report_error);
}

TEFLON_EXPORT void
tflite_plugin_destroy_delegate(TfLiteDelegate *delegate)
{
   if (delegate == NULL)
      return;
   teflon_py_destroy_delegate(delegate);
}

TfLiteStatus
teflon_replace_node_subsets(TfLiteContext *context, TfLiteDelegate *delegate,
                            const TfLiteIntArray *nodes)
{
   /* Zeroed in full: the runtime reads as many bytes as its own TfLiteRegistration has, and
    * async_kernel / inplace_operator must be NULL / none. */
   TfLiteRegistration registration;
   memset(&registration, 0, sizeof(registration));
   registration.init = teflon_partition_init;
   registration.free = teflon_partition_free;
   registration.prepare = teflon_partition_prepare;
   registration.invoke = teflon_partition_invoke;
   registration.builtin_code = kTfLiteBuiltinDelegate;
   registration.custom_name = kernel_name;
   registration.version = 1;
   return context->ReplaceNodeSubsetsWithDelegateKernels(context, registration, nodes, delegate);
}

void
teflon_report_error(TfLiteContext *context, const char *message)
{
   if (context && context->ReportError)
      context->ReportError(context, "%s", message);
   else
      fprintf(stderr, "%s\n", message);
}

static char library_path[PATH_MAX];

static void find_library_path(void)
{
   Dl_info info;
   if (dladdr((void *)&teflon_library_path, &info) && info.dli_fname)
      snprintf(library_path, sizeof(library_path), "%s", info.dli_fname);
}

const char *
teflon_library_path(void)
{
   static pthread_once_t once = PTHREAD_ONCE_INIT;
   pthread_once(&once, find_library_path);
   return library_path;
}
