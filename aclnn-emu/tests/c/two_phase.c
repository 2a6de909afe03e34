/*
 * A C caller of include/gmmfr_aclnn.h performing the full two-phase aclnn sequence of SPEC 4.1,
 * the way the code emitted by `npu-lower-to-aclnn` does: aclCreateTensor for each present
 * operand, <entry>GetWorkspaceSize, aclrtMalloc of the workspace when its size is non-zero, the
 * launch on a stream, aclrtSynchronizeStream, then aclDestroyTensor / aclDestroyIntArray /
 * aclrtFree on every path. The first non-zero status is returned.
 *
 * Built two ways by aclnn-emu/tests/c_abi.rs:
 *   - as is, with -c: calls by name, checking every declaration of the header with a C compiler;
 *   - with -DGMMFR_VIA_TABLE as a shared library: calls through function pointers whose types are
 *     taken from the header's declarations (__typeof__), filled from the Rust `symbols()` list,
 *     so the emulator's Rust functions are exercised through the header's C ABI.
 */
#include "gmmfr_aclnn.h"

#include <string.h>

/* One operand: data == NULL means absent. Dims are those given to aclCreateTensor. */
typedef struct {
    void *data;
    int32_t dtype;
    int32_t format;
    uint64_t rank;
    int64_t view[5];
    uint64_t storage_rank;
    int64_t storage[5];
} gmmfr_operand;

enum { ENTRY_WEIGHT_NZ = 0, ENTRY_WEIGHT_NZ_V2 = 1, ENTRY_V3 = 2 };

enum {
    OP_X1,
    OP_X2,
    OP_SCALE,
    OP_BIAS,
    OP_OFFSET,
    OP_PERTOKEN_SCALE,
    OP_GROUP_LIST,
    OP_SHARED_INPUT,
    OP_LOGIT,
    OP_ROW_INDEX,
    OP_OUT,
    OP_COUNT
};

typedef struct {
    int32_t entry;
    gmmfr_operand operands[OP_COUNT];
    int64_t dtype;
    float shared_input_weight;
    int64_t shared_input_offset;
    int64_t group_list_type;
    const int64_t *tuning; /* NULL: no tuning config */
    uint64_t tuning_len;
} gmmfr_call;

#ifdef GMMFR_VIA_TABLE
#define API_FUNCTIONS(X)                                                                           \
    X(aclCreateTensor)                                                                             \
    X(aclDestroyTensor)                                                                            \
    X(aclCreateIntArray)                                                                           \
    X(aclDestroyIntArray)                                                                          \
    X(aclrtMalloc)                                                                                 \
    X(aclrtFree)                                                                                   \
    X(aclrtSynchronizeStream)                                                                      \
    X(aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize)                                   \
    X(aclnnGroupedMatmulFinalizeRoutingWeightNz)                                                   \
    X(aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize)                                 \
    X(aclnnGroupedMatmulFinalizeRoutingWeightNzV2)                                                 \
    X(aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize)                                         \
    X(aclnnGroupedMatmulFinalizeRoutingV3)

#define DECLARE_POINTER(name) static __typeof__(&name) p_##name;
API_FUNCTIONS(DECLARE_POINTER)

#define COUNT_ONE(name) +1
enum { API_COUNT = 0 API_FUNCTIONS(COUNT_ONE) };

/* Fills the table from (name, address) pairs; returns how many of the 13 functions were found. */
int gmmfr_test_set_api(const char *const *names, void *const *addresses, uint64_t count) {
    int found = 0;
    for (uint64_t i = 0; i < count; ++i) {
#define ASSIGN(name)                                                                               \
    if (strcmp(names[i], #name) == 0) {                                                            \
        memcpy(&p_##name, &addresses[i], sizeof p_##name);                                         \
        ++found;                                                                                   \
    }
        API_FUNCTIONS(ASSIGN)
#undef ASSIGN
    }
    return found;
}

uint64_t gmmfr_test_api_count(void) { return API_COUNT; }

#define CALL(name) p_##name
#else
#define CALL(name) name
#endif

/* The size of gmmfr_call, so the Rust mirror can check its layout. */
size_t gmmfr_test_call_size(void) { return sizeof(gmmfr_call); }

static aclTensor *create(const gmmfr_operand *op) {
    int64_t strides[5];
    int64_t step = 1;
    for (uint64_t i = op->rank; i-- > 0;) {
        strides[i] = step;
        step *= op->view[i];
    }
    return CALL(aclCreateTensor)(op->view, op->rank, (aclDataType)op->dtype, strides, 0,
                                 (aclFormat)op->format, op->storage, op->storage_rank, op->data);
}

aclnnStatus gmmfr_test_run(const gmmfr_call *call, uint64_t *workspace_size_seen) {
    aclTensor *t[OP_COUNT] = {0};
    aclIntArray *tuning = NULL;
    aclOpExecutor *executor = NULL;
    void *workspace = NULL;
    uint64_t workspace_size = 0;
    aclrtStream stream = NULL;
    aclnnStatus status = ACLNN_SUCCESS;
    const bool no_transpose = false;

    for (int i = 0; i < OP_COUNT; ++i) {
        if (call->operands[i].data != NULL) {
            t[i] = create(&call->operands[i]);
            if (t[i] == NULL) {
                status = ACLNN_ERR_PARAM_NULLPTR;
                goto cleanup;
            }
        }
    }
    if (call->tuning != NULL) {
        tuning = CALL(aclCreateIntArray)(call->tuning, call->tuning_len);
        if (tuning == NULL) {
            status = ACLNN_ERR_PARAM_NULLPTR;
            goto cleanup;
        }
    }

    switch (call->entry) {
    case ENTRY_WEIGHT_NZ:
        status = CALL(aclnnGroupedMatmulFinalizeRoutingWeightNzGetWorkspaceSize)(
            t[OP_X1], t[OP_X2], t[OP_SCALE], t[OP_BIAS], t[OP_PERTOKEN_SCALE], t[OP_GROUP_LIST],
            t[OP_SHARED_INPUT], t[OP_LOGIT], t[OP_ROW_INDEX], call->dtype, call->shared_input_weight,
            call->shared_input_offset, no_transpose, no_transpose, call->group_list_type, t[OP_OUT],
            &workspace_size, &executor);
        break;
    case ENTRY_WEIGHT_NZ_V2:
        status = CALL(aclnnGroupedMatmulFinalizeRoutingWeightNzV2GetWorkspaceSize)(
            t[OP_X1], t[OP_X2], t[OP_SCALE], t[OP_BIAS], t[OP_OFFSET], NULL, NULL,
            t[OP_PERTOKEN_SCALE], t[OP_GROUP_LIST], t[OP_SHARED_INPUT], t[OP_LOGIT], t[OP_ROW_INDEX],
            call->dtype, call->shared_input_weight, call->shared_input_offset, no_transpose,
            no_transpose, call->group_list_type, tuning, t[OP_OUT], &workspace_size, &executor);
        break;
    case ENTRY_V3:
        status = CALL(aclnnGroupedMatmulFinalizeRoutingV3GetWorkspaceSize)(
            t[OP_X1], t[OP_X2], t[OP_SCALE], t[OP_BIAS], t[OP_OFFSET], NULL, NULL,
            t[OP_PERTOKEN_SCALE], t[OP_GROUP_LIST], t[OP_SHARED_INPUT], t[OP_LOGIT], t[OP_ROW_INDEX],
            call->dtype, call->shared_input_weight, call->shared_input_offset, no_transpose,
            no_transpose, call->group_list_type, tuning, t[OP_OUT], &workspace_size, &executor);
        break;
    default:
        status = ACLNN_ERR_PARAM_INVALID;
        break;
    }
    if (status != ACLNN_SUCCESS) {
        goto cleanup;
    }
    *workspace_size_seen = workspace_size;

    if (workspace_size > 0) {
        aclError error = CALL(aclrtMalloc)(&workspace, (size_t)workspace_size, ACL_MEM_MALLOC_HUGE_FIRST);
        if (error != ACLNN_SUCCESS) {
            status = error;
            goto cleanup;
        }
    }
    switch (call->entry) {
    case ENTRY_WEIGHT_NZ:
        status = CALL(aclnnGroupedMatmulFinalizeRoutingWeightNz)(workspace, workspace_size, executor, stream);
        break;
    case ENTRY_WEIGHT_NZ_V2:
        status = CALL(aclnnGroupedMatmulFinalizeRoutingWeightNzV2)(workspace, workspace_size, executor, stream);
        break;
    default:
        status = CALL(aclnnGroupedMatmulFinalizeRoutingV3)(workspace, workspace_size, executor, stream);
        break;
    }
    if (status == ACLNN_SUCCESS) {
        status = CALL(aclrtSynchronizeStream)(stream);
    }

cleanup:
    for (int i = 0; i < OP_COUNT; ++i) {
        if (t[i] != NULL) {
            aclnnStatus destroyed = CALL(aclDestroyTensor)(t[i]);
            if (status == ACLNN_SUCCESS) {
                status = destroyed;
            }
        }
    }
    if (tuning != NULL) {
        aclnnStatus destroyed = CALL(aclDestroyIntArray)(tuning);
        if (status == ACLNN_SUCCESS) {
            status = destroyed;
        }
    }
    if (workspace != NULL) {
        aclError freed = CALL(aclrtFree)(workspace);
        if (status == ACLNN_SUCCESS) {
            status = freed;
        }
    }
    return status;
}
