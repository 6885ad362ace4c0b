#include "textflag.h"

// func keeperClone(rfd, wfd, delay uintptr) (pid, errno uintptr)
//
// It blocks every signal in the calling thread, clones a child that shares
// this address space (CLONE_VM, exit signal SIGCHLD), and restores the
// thread's signal mask. The child inherits the fully blocked mask, runs on
// the top of keeperStack, and only makes raw system calls: it closes every descriptor but
// rfd, reads rfd until end of file (when the last write end, held by the
// parent with close-on-exec, goes away), sleeps delay nanoseconds (if not
// zero) and exits. Its hold on the address
// space keeps the parent's execve from tearing it down; that happens when
// the child exits, beside the new image.
TEXT ·keeperClone(SB),NOSPLIT,$16-40
	MOVQ	$-1, 0(SP)		// the set to block: every signal
	MOVQ	$2, DI			// SIG_SETMASK
	LEAQ	0(SP), SI
	LEAQ	8(SP), DX		// the old mask
	MOVQ	$8, R10
	MOVQ	$14, AX			// rt_sigprocmask
	SYSCALL

	MOVQ	rfd+0(FP), R12
	MOVQ	wfd+8(FP), R13
	MOVQ	delay+16(FP), R14
	MOVQ	$0x111, DI		// CLONE_VM | SIGCHLD
	LEAQ	·keeperStack+4032(SB), SI
	MOVQ	$0, DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$56, AX			// clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	child

	MOVQ	AX, BX
	MOVQ	$2, DI			// SIG_SETMASK
	LEAQ	8(SP), SI		// the old mask
	MOVQ	$0, DX
	MOVQ	$8, R10
	MOVQ	$14, AX			// rt_sigprocmask
	SYSCALL
	CMPQ	BX, $-4096
	JHI	failed
	MOVQ	BX, pid+24(FP)
	MOVQ	$0, errno+32(FP)
	RET
failed:
	NEGQ	BX
	MOVQ	$0, pid+24(FP)
	MOVQ	BX, errno+32(FP)
	RET

child:
	// The write end first, so that end of file cannot depend on
	// close_range, then every other descriptor but rfd.
	MOVQ	R13, DI
	MOVQ	$3, AX			// close
	SYSCALL
	CMPQ	R12, $0
	JEQ	above
	MOVQ	$0, DI
	MOVQ	R12, SI
	DECQ	SI
	MOVQ	$0, DX
	MOVQ	$436, AX		// close_range(0, rfd-1, 0)
	SYSCALL
above:
	MOVQ	R12, DI
	INCQ	DI
	MOVQ	$-1, SI
	MOVQ	$0, DX
	MOVQ	$436, AX		// close_range(rfd+1, ~0, 0)
	SYSCALL
wait:
	MOVQ	R12, DI
	MOVQ	SP, SI
	SUBQ	$64, SI			// a byte of buffer on the child's stack
	MOVQ	$1, DX
	MOVQ	$0, AX			// read
	SYSCALL
	CMPQ	AX, $0
	JGT	wait			// a byte: nobody writes one, but keep waiting
	CMPQ	AX, $-4			// EINTR
	JEQ	wait
	CMPQ	R14, $0
	JEQ	exit
	MOVQ	SP, DI
	SUBQ	$128, DI		// a timespec on the child's stack
	MOVQ	R14, AX
	XORQ	DX, DX
	MOVQ	$1000000000, CX
	DIVQ	CX			// AX seconds, DX nanoseconds
	MOVQ	AX, 0(DI)
	MOVQ	DX, 8(DI)
	MOVQ	$0, SI
	MOVQ	$35, AX			// nanosleep (a signal cannot cut it short: all are blocked)
	SYSCALL
exit:
	MOVQ	$0, DI
	MOVQ	$60, AX			// exit
	SYSCALL
	JMP	wait			// not reached
