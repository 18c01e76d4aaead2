/* The subset of the TensorFlow Lite C ABI that libteflon.so uses.
 *
 * One source of truth: build_ffi.py hands this text to cffi's cdef() and the generated C
 * #includes it, so Python and C see the same layout. It therefore has no preprocessor lines;
 * the includer provides <stdbool.h>, <stddef.h> and <stdint.h>.
 *
 * Facts (field order and types) from google-ai-edge/LiteRT tflite/core/c/common.h,
 * tflite/core/c/c_api_types.h, tflite/converter/core/c/tflite_types.h and
 * tflite/converter/core/c/builtin_op_data.h. Fields the delegate never touches are kept in place
 * as void pointers so that every offset and sizeof stays right. Sizes on LP64 Linux, checked by
 * tests/frontends/teflon/test_delegate_abi.py against the upstream values in
 * shared/reference/delegate-poc.md: TfLiteTensor 112, TfLiteNode 80, TfLiteRegistration 88,
 * TfLiteDelegate 56, TfLiteDelegateParams 32, TfLiteAffineQuantization 24.
 */

typedef enum TfLiteStatus {
  kTfLiteOk = 0,
  kTfLiteError = 1,
  kTfLiteDelegateError = 2,
  kTfLiteApplicationError = 3
} TfLiteStatus;

typedef enum TfLiteType {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteComplex64 = 8,
  kTfLiteInt8 = 9,
  kTfLiteFloat16 = 10,
  kTfLiteFloat64 = 11,
  kTfLiteComplex128 = 12,
  kTfLiteUInt64 = 13,
  kTfLiteResource = 14,
  kTfLiteVariant = 15,
  kTfLiteUInt32 = 16,
  kTfLiteUInt16 = 17,
  kTfLiteInt4 = 18,
  kTfLiteBFloat16 = 19,
  kTfLiteInt2 = 20,
  kTfLiteUInt4 = 21,
  kTfLiteFloat8E4M3FN = 22,
  kTfLiteFloat8E5M2 = 23
} TfLiteType;

/* builtin_ops.h: the two operator codes the delegate names. */
typedef enum TfLiteBuiltinOperator {
  kTfLiteBuiltinCustom = 32,
  kTfLiteBuiltinDelegate = 51
} TfLiteBuiltinOperator;

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct TfLiteFloatArray {
  int size;
  float data[];
} TfLiteFloatArray;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef enum TfLiteQuantizationType {
  kTfLiteNoQuantization = 0,
  kTfLiteAffineQuantization = 1,
  kTfLiteBlockwiseQuantization = 2
} TfLiteQuantizationType;

typedef struct TfLiteQuantization {
  TfLiteQuantizationType type;
  void *params;
} TfLiteQuantization;

typedef struct TfLiteAffineQuantization {
  TfLiteFloatArray *scale;
  TfLiteIntArray *zero_point;
  int32_t quantized_dimension;
} TfLiteAffineQuantization;

/* Upstream lists one member per element type; all are pointers, so this reduced union has the
 * same size and alignment. */
typedef union TfLitePtrUnion {
  char *raw;
  const char *raw_const;
  void *data;
} TfLitePtrUnion;

typedef enum TfLiteAllocationType {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo = 1,
  kTfLiteArenaRw = 2,
  kTfLiteArenaRwPersistent = 3,
  kTfLiteDynamic = 4,
  kTfLitePersistentRo = 5,
  kTfLiteCustom = 6,
  kTfLiteVariantObject = 7,
  kTfLiteNonCpu = 8
} TfLiteAllocationType;

typedef int TfLiteBufferHandle;

struct TfLiteContext;
struct TfLiteDelegate;
struct TfLiteRegistration;

typedef struct TfLiteTensor {
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray *dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void *allocation;
  const char *name;
  struct TfLiteDelegate *delegate;
  TfLiteBufferHandle buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void *sparsity;
  const TfLiteIntArray *dims_signature;
} TfLiteTensor;

typedef struct TfLiteNode {
  TfLiteIntArray *inputs;
  TfLiteIntArray *outputs;
  TfLiteIntArray *intermediates;
  TfLiteIntArray *temporaries;
  void *user_data;
  void *builtin_data;
  const void *custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate *delegate;
  bool might_have_side_effect;
} TfLiteNode;

typedef struct TfLiteDelegateParams {
  struct TfLiteDelegate *delegate;
  TfLiteIntArray *nodes_to_replace;
  TfLiteIntArray *input_tensors;
  TfLiteIntArray *output_tensors;
} TfLiteDelegateParams;

/* Only tensors_size, GetExecutionPlan, tensors, ReportError, GetNodeAndRegistration and
 * ReplaceNodeSubsetsWithDelegateKernels are used; they have not moved since TF 1.x. The
 * struct ends here on LP64 Linux (Windows adds two function pointers); nothing depends on its
 * size. */
typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext *context,
                                   TfLiteIntArray **execution_plan);
  TfLiteTensor *tensors;
  void *impl_;
  void *ResizeTensor;
  void (*ReportError)(struct TfLiteContext *context, const char *msg, ...);
  void *AddTensors;
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext *context, int node_index,
                                         TfLiteNode **node,
                                         struct TfLiteRegistration **registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(
      struct TfLiteContext *context, struct TfLiteRegistration registration,
      const TfLiteIntArray *nodes_to_replace, struct TfLiteDelegate *delegate);
  int recommended_num_threads;
  void *GetExternalContext;
  void *SetExternalContext;
  bool allow_fp32_relax_to_fp16;
  void *profiler;
  void *AllocatePersistentBuffer;
  void *AllocateBufferForEval;
  void *RequestScratchBufferInArena;
  void *GetScratchBuffer;
  void *ResizeTensorExplicit;
  void *PreviewDelegatePartitioning;
  void *GetTensor;
  void *GetEvalTensor;
  void *GetModelMetadata;
  void *AcquireSubgraphContext;
  void *ReleaseSubgraphContext;
} TfLiteContext;

/* The newest layout (with async_kernel and inplace_operator). It is passed by value, and the
 * runtime reads as many bytes as its own version has, so it must be this size and zeroed. */
typedef struct TfLiteRegistration {
  void *(*init)(TfLiteContext *context, const char *buffer, size_t length);
  void (*free)(TfLiteContext *context, void *buffer);
  TfLiteStatus (*prepare)(TfLiteContext *context, TfLiteNode *node);
  TfLiteStatus (*invoke)(TfLiteContext *context, TfLiteNode *node);
  void *profiling_string;
  int32_t builtin_code;
  const char *custom_name;
  int version;
  void *registration_external;
  void *async_kernel;
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef enum TfLiteDelegateFlags {
  kTfLiteDelegateFlagsNone = 0,
  kTfLiteDelegateFlagsAllowDynamicTensors = 1,
  kTfLiteDelegateFlagsRequirePropagatedShapes = 2
} TfLiteDelegateFlags;

typedef struct TfLiteDelegate {
  void *data_;
  TfLiteStatus (*Prepare)(TfLiteContext *context, struct TfLiteDelegate *delegate);
  void *CopyFromBufferHandle;
  void *CopyToBufferHandle;
  void *FreeBufferHandle;
  int64_t flags;
  void *opaque_delegate_builder;
} TfLiteDelegate;

/* builtin_op_data.h: the option structs the frontend's mapping reads. Structs the delegate only
 * reads through a pointer may stop after the last field it needs (later fields are newer). */

typedef enum TfLitePadding {
  kTfLitePaddingUnknown = 0,
  kTfLitePaddingSame = 1,
  kTfLitePaddingValid = 2
} TfLitePadding;

typedef enum TfLiteFusedActivation {
  kTfLiteActNone = 0,
  kTfLiteActRelu = 1,
  kTfLiteActReluN1To1 = 2,
  kTfLiteActRelu6 = 3,
  kTfLiteActTanh = 4,
  kTfLiteActSignBit = 5,
  kTfLiteActSigmoid = 6
} TfLiteFusedActivation;

typedef struct TfLitePaddingValues {
  int width;
  int height;
  int width_offset;
  int height_offset;
} TfLitePaddingValues;

typedef struct TfLiteConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  TfLiteFusedActivation activation;
  int dilation_width_factor;
  int dilation_height_factor;
  TfLiteType quantized_bias_type;
} TfLiteConvParams;

typedef struct TfLiteDepthwiseConvParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int depth_multiplier;
  TfLiteFusedActivation activation;
  int dilation_width_factor;
  int dilation_height_factor;
} TfLiteDepthwiseConvParams;

typedef struct TfLitePoolParams {
  TfLitePadding padding;
  int stride_width;
  int stride_height;
  int filter_width;
  int filter_height;
  TfLiteFusedActivation activation;
  TfLitePaddingValues computed_padding;
} TfLitePoolParams;

typedef struct TfLiteFullyConnectedParams {
  TfLiteFusedActivation activation;
  int weights_format;
  bool keep_num_dims;
  bool asymmetric_quantize_inputs;
  TfLiteType quantized_bias_type;
} TfLiteFullyConnectedParams;

typedef struct TfLiteAddParams {
  TfLiteFusedActivation activation;
  bool pot_scale_int16;
} TfLiteAddParams;

typedef struct TfLiteSubParams {
  TfLiteFusedActivation activation;
  bool pot_scale_int16;
} TfLiteSubParams;

typedef struct TfLiteMulParams {
  TfLiteFusedActivation activation;
} TfLiteMulParams;

typedef struct TfLiteConcatenationParams {
  int axis;
  TfLiteFusedActivation activation;
} TfLiteConcatenationParams;

typedef struct TfLiteSoftmaxParams {
  float beta;
} TfLiteSoftmaxParams;

typedef struct TfLiteStridedSliceParams {
  int begin_mask;
  int end_mask;
  int ellipsis_mask;
  int new_axis_mask;
  int shrink_axis_mask;
  bool offset;
} TfLiteStridedSliceParams;

/* TfLiteResizeBilinearParams and TfLiteResizeNearestNeighborParams share this layout. */
typedef struct TfLiteResizeParams {
  bool align_corners;
  bool half_pixel_centers;
} TfLiteResizeParams;
