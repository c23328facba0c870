/* The Perl 5.36 layouts the Perl reader of script frames reads
 * (interpose/script_perl.cc): x86-64, USE_ITHREADS and MULTIPLICITY
 * (Debian's libperl5.36). C and C++: the layout check
 * (tests/unit/perl_layout_check.c), compiled against
 * /usr/lib/x86_64-linux-gnu/perl/5.36/CORE, compares every value with the
 * headers' offsetof, sizeof and constants.
 *
 * Read off the headers: intrpvar.h (struct interpreter), cop.h (PERL_SI,
 * PERL_CONTEXT, COP), sv.h (struct sv, XPVCV, XPVGV, the SV types and
 * flags), cv.h (CVf_*), gv.h (GP), hv.h (xpvhv_with_aux, xpvhv_aux, HEK),
 * opnames.h (OP_REQUIRE, OP_DOFILE). */
#ifndef LEAKWATCH_INTERPOSE_PERL_LAYOUT_H_
#define LEAKWATCH_INTERPOSE_PERL_LAYOUT_H_

/* The version these are for (PERL_REVISION, PERL_VERSION). */
#define LW_PERL_REVISION 5
#define LW_PERL_VERSION 36

/* struct interpreter (intrpvar.h); its size is libperl's PL_interp_size. */
#define LW_PERL_INTERP_SIZE 3768
#define LW_PERL_INTERP_CURCOP 208       /* PERLVAR(I, curcop, COP *) */
#define LW_PERL_INTERP_CURSTACKINFO 224 /* (I, curstackinfo, PERL_SI *) */
#define LW_PERL_INTERP_DBSUB 1656       /* (I, DBsub, GV *) */

/* struct stackinfo, PERL_SI (cop.h). */
#define LW_PERL_SI_CXSTACK 8 /* PERL_CONTEXT *si_cxstack */
#define LW_PERL_SI_PREV 16   /* struct stackinfo *si_prev */
#define LW_PERL_SI_CXIX 32   /* I32 si_cxix */
#define LW_PERL_SI_CXMAX 36  /* I32 si_cxmax */
#define LW_PERL_SI_TYPE 44   /* I32 si_type */
#define LW_PERL_SI_MAIN 1    /* PERLSI_MAIN */

/* struct context, PERL_CONTEXT (cop.h): cx_u.cx_blk, struct block. */
#define LW_PERL_CX_SIZE 104   /* sizeof(PERL_CONTEXT) */
#define LW_PERL_CX_TYPE 0     /* U8 blku_type (cx_type) */
#define LW_PERL_CX_U16 2      /* U16 blku_u16 */
#define LW_PERL_CX_OLDCOP 16  /* COP *blku_oldcop */
#define LW_PERL_CX_RETOP 48   /* blk_u.blku_{sub,format,eval}.retop */
#define LW_PERL_CX_SUB_CV 72  /* blk_u.blku_sub.cv (= blku_format.cv) */
#define LW_PERL_CX_EVAL_CV 88 /* blk_u.blku_eval.cv */
#define LW_PERL_CXTYPEMASK 0xf
#define LW_PERL_CXT_SUB 9
#define LW_PERL_CXT_FORMAT 10
#define LW_PERL_CXT_EVAL 11
#define LW_PERL_CXP_SUB_RE_FAKE 0x80 /* on a CXt_SUB */
#define LW_PERL_CXP_TRY 0x80         /* on a CXt_EVAL */
/* CxOLD_OP_TYPE(cx) = blk_u16 >> 7: the op that pushed an eval context. */
#define LW_PERL_CX_OLD_OP_TYPE_SHIFT 7
#define LW_PERL_OP_REQUIRE 342 /* OP_REQUIRE (opnames.h) */
#define LW_PERL_OP_DOFILE 343  /* OP_DOFILE */

/* struct cop (cop.h, USE_ITHREADS). */
#define LW_PERL_COP_LINE 36 /* line_t (U32) cop_line */
#define LW_PERL_COP_FILE 48 /* char *cop_file */

/* struct sv (sv.h): the head of every SV, AV, HV, CV, GV. */
#define LW_PERL_SV_ANY 0            /* void *sv_any: the body */
#define LW_PERL_SV_FLAGS 12         /* U32 sv_flags */
#define LW_PERL_SV_U 16             /* sv_u (svu_gp for a GV) */
#define LW_PERL_SVTYPEMASK 0xff     /* also a freed SV's type */
#define LW_PERL_SVT_PVGV 9          /* SVt_PVGV */
#define LW_PERL_SVT_PVHV 12         /* SVt_PVHV */
#define LW_PERL_SVT_PVCV 13         /* SVt_PVCV */
#define LW_PERL_SVT_PVFM 14         /* SVt_PVFM */
#define LW_PERL_SVF_OOK 0x02000000  /* SVf_OOK: an HV has its aux part */
#define LW_PERL_SVP_POK 0x00004000  /* SVp_POK */
#define LW_PERL_SVPGV_GP 0x00008000 /* SVpgv_GP (isGV_with_GP) */

/* XPVCV, the body of a CV (sv.h _XPVCV_COMMON, cv.h). */
#define LW_PERL_CV_STASH 32         /* HV *xcv_stash */
#define LW_PERL_CV_GV_U 56          /* xcv_gv_u: GV *xcv_gv or HEK *xcv_hek */
#define LW_PERL_CV_FLAGS 92         /* cv_flags_t (U32) xcv_flags */
#define LW_PERL_CVF_NAMED 0x8000    /* CVf_NAMED: xcv_gv_u is a HEK */
#define LW_PERL_CVF_LEXICAL 0x10000 /* CVf_LEXICAL: no package */

/* XPVGV, the body of a GV (sv.h, gv.h), and its GP (gv.h). */
#define LW_PERL_GV_NAME_HEK 32 /* xiv_u.xivu_namehek (GvNAME_HEK) */
#define LW_PERL_GV_STASH 40    /* xnv_u.xgv_stash (GvSTASH) */
#define LW_PERL_GP_CV 16       /* CV *gp_cv (GvCV) */
#define LW_PERL_GP_EGV 56      /* GV *gp_egv (GvEGV) */

/* struct xpvhv_with_aux, the body of an HV with SVf_OOK (hv.h). */
#define LW_PERL_HV_AUX 32         /* struct xpvhv_aux xhv_aux */
#define LW_PERL_AUX_NAME 0        /* xhv_name_u: HEK *, or HEK ** if count */
#define LW_PERL_AUX_NAME_COUNT 28 /* I32 xhv_name_count */

/* struct hek (hv.h). */
#define LW_PERL_HEK_LEN 4 /* I32 hek_len (< 0: the key is an SV) */
#define LW_PERL_HEK_KEY 8 /* char hek_key[] */

#endif /* LEAKWATCH_INTERPOSE_PERL_LAYOUT_H_ */
