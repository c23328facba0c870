/* Checks interpose/perl_layout.h against the Perl 5.36 headers it is
 * compiled with (Debian's libperl5.36, /usr/lib/x86_64-linux-gnu/perl/5.36/
 * CORE, with the flags of `perl -MExtUtils::Embed -e ccopts`): every offset,
 * size and constant the Perl reader of script frames uses is the headers'.
 * Also the width of each field the reader loads (its Load<T>), and the size
 * of struct interpreter against the running libperl's PL_interp_size (what
 * InitPerlReader compares it with: wrong build flags here show there).
 * Prints each mismatch; exits 1 if any, 2 if the headers are not a threaded
 * Perl 5.36's. */
#include <EXTERN.h>
#include <perl.h>
/* perl.h defines these as macros around the interpreter; not wanted here. */
#undef printf
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

#include "interpose/perl_layout.h"
#include "tests/unit/layout_check.h"


int main(void) {
#if !defined(USE_ITHREADS) || !defined(MULTIPLICITY)
  printf(
      "Perl %d.%d headers without USE_ITHREADS/MULTIPLICITY: not the "
      "threaded build the table is for\n",
      PERL_REVISION, PERL_VERSION);
  return 2;
#else
  if (PERL_REVISION != LW_PERL_REVISION || PERL_VERSION != LW_PERL_VERSION) {
    printf("headers of Perl %d.%d, table for %d.%d\n", PERL_REVISION,
           PERL_VERSION, LW_PERL_REVISION, LW_PERL_VERSION);
    return 2;
  }

  /* struct interpreter (intrpvar.h). */
  Check("interp_size", LW_PERL_INTERP_SIZE, sizeof(struct interpreter));
  FIELD("interp_curcop", LW_PERL_INTERP_CURCOP, struct interpreter, Icurcop, 8);
  FIELD("interp_curstackinfo", LW_PERL_INTERP_CURSTACKINFO, struct interpreter,
        Icurstackinfo, 8);
  FIELD("interp_dbsub", LW_PERL_INTERP_DBSUB, struct interpreter, IDBsub, 8);
  {
    /* The library's own size of the interpreter (PL_interp_size). */
    void* libperl = dlopen("libperl.so.5.36", RTLD_NOW | RTLD_LOCAL);
    const U16* size =
        libperl ? (const U16*)dlsym(libperl, "PL_interp_size") : NULL;
    if (size == NULL) {
      printf("libperl.so.5.36's PL_interp_size not found: %s\n", dlerror());
      ++layout_failures;
    } else {
      Check("interp_size (libperl's PL_interp_size)", LW_PERL_INTERP_SIZE,
            *size);
    }
  }

  /* PERL_SI (cop.h). */
  FIELD("si_cxstack", LW_PERL_SI_CXSTACK, PERL_SI, si_cxstack, 8);
  FIELD("si_prev", LW_PERL_SI_PREV, PERL_SI, si_prev, 8);
  FIELD("si_cxix", LW_PERL_SI_CXIX, PERL_SI, si_cxix, 4);
  FIELD("si_cxmax", LW_PERL_SI_CXMAX, PERL_SI, si_cxmax, 4);
  FIELD("si_type", LW_PERL_SI_TYPE, PERL_SI, si_type, 4);
  Check("PERLSI_MAIN", LW_PERL_SI_MAIN, PERLSI_MAIN);

  /* PERL_CONTEXT (cop.h). */
  Check("cx_size", LW_PERL_CX_SIZE, sizeof(PERL_CONTEXT));
  FIELD("cx_type (blku_type)", LW_PERL_CX_TYPE, PERL_CONTEXT,
        cx_u.cx_blk.blku_type, 1);
  FIELD("cx_type (cx_type)", LW_PERL_CX_TYPE, PERL_CONTEXT, cx_type, 1);
  FIELD("cx_u16", LW_PERL_CX_U16, PERL_CONTEXT, cx_u.cx_blk.blku_u16, 2);
  FIELD("cx_oldcop", LW_PERL_CX_OLDCOP, PERL_CONTEXT, cx_u.cx_blk.blku_oldcop,
        8);
  FIELD("cx_retop (sub)", LW_PERL_CX_RETOP, PERL_CONTEXT,
        cx_u.cx_blk.blk_u.blku_sub.retop, 8);
  FIELD("cx_retop (format)", LW_PERL_CX_RETOP, PERL_CONTEXT,
        cx_u.cx_blk.blk_u.blku_format.retop, 8);
  FIELD("cx_retop (eval)", LW_PERL_CX_RETOP, PERL_CONTEXT,
        cx_u.cx_blk.blk_u.blku_eval.retop, 8);
  FIELD("cx_sub_cv (sub)", LW_PERL_CX_SUB_CV, PERL_CONTEXT,
        cx_u.cx_blk.blk_u.blku_sub.cv, 8);
  FIELD("cx_sub_cv (format)", LW_PERL_CX_SUB_CV, PERL_CONTEXT,
        cx_u.cx_blk.blk_u.blku_format.cv, 8);
  FIELD("cx_eval_cv", LW_PERL_CX_EVAL_CV, PERL_CONTEXT,
        cx_u.cx_blk.blk_u.blku_eval.cv, 8);
  Check("CXTYPEMASK", LW_PERL_CXTYPEMASK, CXTYPEMASK);
  Check("CXt_SUB", LW_PERL_CXT_SUB, CXt_SUB);
  Check("CXt_FORMAT", LW_PERL_CXT_FORMAT, CXt_FORMAT);
  Check("CXt_EVAL", LW_PERL_CXT_EVAL, CXt_EVAL);
  Check("CXp_SUB_RE_FAKE", LW_PERL_CXP_SUB_RE_FAKE, CXp_SUB_RE_FAKE);
  Check("CXp_TRY", LW_PERL_CXP_TRY, CXp_TRY);
  Check("OP_REQUIRE", LW_PERL_OP_REQUIRE, OP_REQUIRE);
  Check("OP_DOFILE", LW_PERL_OP_DOFILE, OP_DOFILE);
  {
    /* CxOLD_OP_TYPE: the reader's shift of blk_u16 gives the header's op. */
    PERL_CONTEXT cx;
    memset(&cx, 0, sizeof cx);
    cx.blk_u16 = (U16)(OP_DOFILE << LW_PERL_CX_OLD_OP_TYPE_SHIFT);
    Check("CxOLD_OP_TYPE (shift)", OP_DOFILE, (long)CxOLD_OP_TYPE(&cx));
  }

  /* COP (cop.h). */
  FIELD("cop_line", LW_PERL_COP_LINE, COP, cop_line, 4);
  FIELD("cop_file", LW_PERL_COP_FILE, COP, cop_file, 8);

  /* struct sv (sv.h), the SV types and flags. */
  FIELD("sv_any", LW_PERL_SV_ANY, SV, sv_any, 8);
  FIELD("sv_flags", LW_PERL_SV_FLAGS, SV, sv_flags, 4);
  FIELD("sv_u", LW_PERL_SV_U, SV, sv_u, 8);
  FIELD("sv_u (gv)", LW_PERL_SV_U, GV, sv_u.svu_gp, 8);
  Check("SVTYPEMASK", LW_PERL_SVTYPEMASK, SVTYPEMASK);
  Check("SVt_PVGV", LW_PERL_SVT_PVGV, SVt_PVGV);
  Check("SVt_PVHV", LW_PERL_SVT_PVHV, SVt_PVHV);
  Check("SVt_PVCV", LW_PERL_SVT_PVCV, SVt_PVCV);
  Check("SVt_PVFM", LW_PERL_SVT_PVFM, SVt_PVFM);
  Check("SVf_OOK", LW_PERL_SVF_OOK, SVf_OOK);
  Check("SVp_POK", LW_PERL_SVP_POK, SVp_POK);
  Check("SVpgv_GP", LW_PERL_SVPGV_GP, SVpgv_GP);

  /* XPVCV (sv.h, cv.h). */
  FIELD("cv_stash", LW_PERL_CV_STASH, XPVCV, xcv_stash, 8);
  FIELD("cv_gv_u (gv)", LW_PERL_CV_GV_U, XPVCV, xcv_gv_u.xcv_gv, 8);
  FIELD("cv_gv_u (hek)", LW_PERL_CV_GV_U, XPVCV, xcv_gv_u.xcv_hek, 8);
  FIELD("cv_flags", LW_PERL_CV_FLAGS, XPVCV, xcv_flags, 4);
  Check("CVf_NAMED", LW_PERL_CVF_NAMED, CVf_NAMED);
  Check("CVf_LEXICAL", LW_PERL_CVF_LEXICAL, CVf_LEXICAL);

  /* XPVGV (sv.h) and GP (gv.h). */
  FIELD("gv_name_hek", LW_PERL_GV_NAME_HEK, XPVGV, xiv_u.xivu_namehek, 8);
  FIELD("gv_stash", LW_PERL_GV_STASH, XPVGV, xnv_u.xgv_stash, 8);
  FIELD("gp_cv", LW_PERL_GP_CV, GP, gp_cv, 8);
  FIELD("gp_egv", LW_PERL_GP_EGV, GP, gp_egv, 8);

  /* struct xpvhv_with_aux, struct xpvhv_aux (hv.h). */
  Check("hv_aux", LW_PERL_HV_AUX, offsetof(struct xpvhv_with_aux, xhv_aux));
  FIELD("aux_name", LW_PERL_AUX_NAME, struct xpvhv_aux,
        xhv_name_u.xhvnameu_name, 8);
  FIELD("aux_name_count", LW_PERL_AUX_NAME_COUNT, struct xpvhv_aux,
        xhv_name_count, 4);

  /* HEK (hv.h). */
  FIELD("hek_len", LW_PERL_HEK_LEN, HEK, hek_len, 4);
  FIELD("hek_key", LW_PERL_HEK_KEY, HEK, hek_key[0], 1);

  printf("Perl %d.%d.%d: %s\n", PERL_REVISION, PERL_VERSION, PERL_SUBVERSION,
         layout_failures ? "MISMATCH" : "layout ok");
  return layout_failures ? 1 : 0;
#endif
}
