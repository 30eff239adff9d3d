# A BIOS boot sector for the KVM tests: prints a marker on COM1, then a numbered heartbeat
# line about every 200 ms, forever. Assembled with `as`, linked at 0x7c00 into a flat binary.
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7c00, %sp
    sti
    # COM1: 115200 8N1, FIFO on.
    mov $0x3f9, %dx; mov $0x00, %al; out %al, %dx    # no interrupts
    mov $0x3fb, %dx; mov $0x80, %al; out %al, %dx    # DLAB
    mov $0x3f8, %dx; mov $0x01, %al; out %al, %dx    # divisor 1
    mov $0x3f9, %dx; mov $0x00, %al; out %al, %dx
    mov $0x3fb, %dx; mov $0x03, %al; out %al, %dx    # 8N1
    mov $0x3fa, %dx; mov $0xc7, %al; out %al, %dx    # FIFO
    mov $marker, %si
    call puts
    xor %bx, %bx
beat:
    mov $heartbeat, %si
    call puts
    mov %bx, %ax
    call puthex
    mov $crlf, %si
    call puts
    inc %bx
    # BIOS wait: CX:DX microseconds (200 ms).
    mov $0x86, %ah
    mov $0x0003, %cx
    mov $0x0d40, %dx
    int $0x15
    jmp beat

# Prints the NUL-terminated string at %si.
puts:
    lodsb
    test %al, %al
    jz 1f
    call putc
    jmp puts
1:  ret

# Prints %ax as four hex digits.
puthex:
    mov $4, %cx
2:  rol $4, %ax
    push %ax
    and $0x0f, %al
    add $'0', %al
    cmp $'9', %al
    jbe 3f
    add $7, %al
3:  call putc
    pop %ax
    loop 2b
    ret

# Writes %al to COM1 once it can take it.
putc:
    push %dx
    push %ax
    mov $0x3fd, %dx
4:  in %dx, %al
    test $0x20, %al
    jz 4b
    pop %ax
    mov $0x3f8, %dx
    out %al, %dx
    pop %dx
    ret

marker:    .asciz "OXSTACK-GUEST-UP\r\n"
heartbeat: .asciz "heartbeat "
crlf:      .asciz "\r\n"

    .org 510
    .word 0xaa55
