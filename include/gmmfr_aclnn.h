/*
 * gmmfr_aclnn.h - the subset of the CANN ACL / aclnn C ABI that gmmfr's aclnn lowering calls.
 *
 * These are the signatures the emitted code assumes (SPEC.md section 4.1): the LLVM-dialect
 * calls produced by the `npu-lower-to-aclnn` pass pass exactly these argument lists, in this
 * order, with these widths. The names, enum values and error codes follow the usual CANN
 * spellings (acl/acl_base.h, acl/acl_rt.h, aclnn/acl_meta.h, aclnnop/...), so the same
 * generated code links against a real CANN installation.
 *
 * In this repository the functions are implemented by the crate `gmmfr-aclnn-emu`
 * (aclnn-emu/), an EMULATOR on the CPU: device memory is host memory, streams are ignored and
 * every launch completes before it returns. It is not a driver and talks to no hardware.
 *
 * Emulator conventions that differ from hardware (documented in aclnn-emu/src/lib.rs):
 *   - ACL_INT4 tensors hold ONE int4 value per byte (an int8 in [-8, 7]); real CANN packs two
 *     values per byte. Element size of ACL_INT4 is therefore 1 byte here.
 *   - The workspace passed to a launch must come from aclrtMalloc.
 *   - Runtime preconditions the real kernel does not check (active row_index outside the output,
 *     sum(group_list) > m, negative counts) make the launch return
 *     GMMFR_EMU_ERR_RUNTIME_PRECONDITION and write nothing.
 */
#ifndef GMMFR_ACLNN_H
#define GMMFR_ACLNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- opaque handles ---------------------------------------------------------------------- */

/** A tensor descriptor: view dims, dtype, strides, offset, format, storage dims, data pointer. */
typedef struct aclTensor aclTensor;
/** An array of int64 values (e.g. the tuning config). */
typedef struct aclIntArray aclIntArray;
/** The state a GetWorkspaceSize call prepares for exactly one launch. */
typedef struct aclOpExecutor aclOpExecutor;
/** A device stream (ignored by the emulator; any value, including NULL, is accepted). */
typedef void *aclrtStream;

/** Status of the aclDestroy and aclnn calls. */
typedef int32_t aclnnStatus;
/** Status of aclrt* runtime calls. */
typedef int aclError;

/* ---- enums ------------------------------------------------------------------------------- */

typedef enum {
    ACL_FLOAT = 0,
    ACL_FLOAT16 = 1,
    ACL_INT8 = 2,
    ACL_INT32 = 3,
    ACL_INT64 = 9,
    ACL_BF16 = 27,
    ACL_INT4 = 29
} aclDataType;

typedef enum {
    ACL_FORMAT_ND = 2,
    ACL_FORMAT_FRACTAL_NZ = 29
} aclFormat;

typedef enum {
    ACL_MEM_MALLOC_HUGE_FIRST = 0
} aclrtMemMallocPolicy;

/* ---- status codes ------------------------------------------------------------------------ */

/** Success (aclnnStatus and aclError). */
#define ACLNN_SUCCESS 0
/** A required pointer is null, or an unsupported combination of absent optional tensors. */
#define ACLNN_ERR_PARAM_NULLPTR 161001
/** A dtype, format, shape, stride or attribute is out of range (also: an unknown handle). */
#define ACLNN_ERR_PARAM_INVALID 161002
/** An internal error of the implementation. */
#define ACLNN_ERR_INNER 561000
/**
 * Emulator only: a runtime precondition failed at launch and the emulator refused to perform
 * the out-of-bounds (or otherwise undefined) access the real kernel would not check: an active
 * row_index outside [0, output rows), sum(group_list) > m, a negative count or a decreasing
 * cumsum group_list, an int4 byte outside [-8, 7], non-zero high bits in an A8W4 int64 scale.
 * Nothing is written. The number is CANN's inner-error class (it coincides with
 * ACLNN_ERR_INNER_TILING_ERROR, which real CANN returns for shapes its tiling rejects).
 */
#define GMMFR_EMU_ERR_RUNTIME_PRECONDITION 561002

/** aclError: an invalid argument (null out-pointer, zero size, unknown policy). */
#define ACL_ERROR_INVALID_PARAM 100000
/** aclError: the runtime rejected an argument (aclrtFree of a pointer it did not allocate). */
#define ACL_ERROR_RT_PARAM_INVALID 107000
/** aclError: device memory could not be allocated. */
#define ACL_ERROR_RT_MEMORY_ALLOCATION 207001
/** aclError: an internal error of the runtime. */
#define ACL_ERROR_INTERNAL_ERROR 500000

/* ---- tensors and int arrays -------------------------------------------------------------- */

/**
 * Creates a tensor descriptor. `stride` has viewDimsNum entries; `offset` is in elements from
 * tensorData. Returns NULL when a dims/stride pointer is NULL with a non-zero count, a count
 * exceeds 8, a dim is negative or offset is negative.
 */
aclTensor *aclCreateTensor(const int64_t *viewDims, uint64_t viewDimsNum, aclDataType dataType,
                           const int64_t *stride, int64_t offset, aclFormat format,
                           const int64_t *storageDims, uint64_t storageDimsNum, void *tensorData);

/** Releases a tensor descriptor (not its data). NULL is a no-op. */
aclnnStatus aclDestroyTensor(const aclTensor *tensor);

/** Creates an int array holding a copy of `size` values (NULL if value is NULL with size > 0,
 * or size > 65536). */
aclIntArray *aclCreateIntArray(const int64_t *value, uint64_t size);

/** Releases an int array. NULL is a no-op. */
aclnnStatus aclDestroyIntArray(const aclIntArray *array);

/* ---- runtime ----------------------------------------------------------------------------- */

/** Allocates `size` (> 0) bytes of device memory, zero-filled, 64-byte aligned in the emulator. */
aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy);

/** Frees memory from aclrtMalloc. */
aclError aclrtFree(void *devPtr);

/** Waits for the stream (the emulator's launches are synchronous: returns ACLNN_SUCCESS). */
aclError aclrtSynchronizeStream(aclrtStream stream);

/* ---- aclnnGroupedMatmulFinalizeRouting: two-phase entry points ------------------------------ */

/** A8W8, int8 FRACTAL_NZ weight. */
aclnnStatus aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *scale, const aclTensor *bias,
    const aclTensor *pertokenScaleOptional, const aclTensor *groupList, const aclTensor *sharedInput,
    const aclTensor *logit, const aclTensor *rowIndex, int64_t dtype, float sharedInputWeight,
    int64_t sharedInputOffset, bool transposeX1, bool transposeX2, int64_t groupListType,
    aclTensor *out, uint64_t *workspaceSize, aclOpExecutor **executor);

aclnnStatus aclnnGroupedMatmulFinalizeRoutingWeightNz(void *workspace, uint64_t workspaceSize,
                                                      aclOpExecutor *executor, aclrtStream stream);

/** A8W8 or A8W4 with a FRACTAL_NZ weight, with offset and tuning config. */
aclnnStatus aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *scale, const aclTensor *bias,
    const aclTensor *offsetOptional, const aclTensor *antiquantScaleOptional,
    const aclTensor *antiquantOffsetOptional, const aclTensor *pertokenScaleOptional,
    const aclTensor *groupList, const aclTensor *sharedInput, const aclTensor *logit,
    const aclTensor *rowIndex, int64_t dtype, float sharedInputWeight, int64_t sharedInputOffset,
    bool transposeX1, bool transposeX2, int64_t groupListType,
    const aclIntArray *tuningConfigOptional, aclTensor *out, uint64_t *workspaceSize,
    aclOpExecutor **executor);

aclnnStatus aclnnGroupedMatmulFinalizeRoutingWeightNzV2(void *workspace, uint64_t workspaceSize,
                                                        aclOpExecutor *executor, aclrtStream stream);

/** A8W4 with an ND int4 weight (same parameter list as WeightNzV2). */
aclnnStatus aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize(
    const aclTensor *x1, const aclTensor *x2, const aclTensor *scale, const aclTensor *bias,
    const aclTensor *offsetOptional, const aclTensor *antiquantScaleOptional,
    const aclTensor *antiquantOffsetOptional, const aclTensor *pertokenScaleOptional,
    const aclTensor *groupList, const aclTensor *sharedInput, const aclTensor *logit,
    const aclTensor *rowIndex, int64_t dtype, float sharedInputWeight, int64_t sharedInputOffset,
    bool transposeX1, bool transposeX2, int64_t groupListType,
    const aclIntArray *tuningConfigOptional, aclTensor *out, uint64_t *workspaceSize,
    aclOpExecutor **executor);

aclnnStatus aclnnGroupedMatmulFinalizeRoutingV3(void *workspace, uint64_t workspaceSize,
                                                aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* GMMFR_ACLNN_H */
