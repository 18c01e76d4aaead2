/* The C helpers libteflon.so's shim gives its Python side (declared to cffi in build_ffi.py).
 *
 * Included by the cffi-generated C after <stdbool.h>, <stddef.h>, <stdint.h> and tflite_abi.h.
 */
#ifndef TEFLON_SHIM_H
#define TEFLON_SHIM_H

/* ctx->ReplaceNodeSubsetsWithDelegateKernels with a zeroed, newest-layout TfLiteRegistration
 * passed by value, whose callbacks are the partition kernels implemented in Python. */
TfLiteStatus teflon_replace_node_subsets(TfLiteContext *context, TfLiteDelegate *delegate,
                                         const TfLiteIntArray *nodes);

/* ctx->ReportError(ctx, "%s", message): the variadic call stays in C. */
void teflon_report_error(TfLiteContext *context, const char *message);

/* The file this library was loaded from (dladdr), so Python can find its package. */
const char *teflon_library_path(void);

#endif
