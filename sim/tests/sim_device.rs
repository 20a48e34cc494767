//! `SimDevice` as a `driver::Transport`, on the Verilog copy master: registers, DMA buffers,
//! interrupt waits, faults and resets — everything through `Box<dyn Transport>`.

mod common;

use std::time::Duration;

use common::axi_copy::*;
use driver::{DeviceKind, Transport, TransportError, WaitBudget};
use sim::{MemoryConfig, Model, ModelOptions, SimDevice, SimDeviceConfig};

fn config() -> SimDeviceConfig {
    SimDeviceConfig {
        name: "sim:axi_copy".into(),
        memory: MemoryConfig {
            base: 0x8000_0000,
            size: 1 << 20,
            read_latency: 8,
            ..MemoryConfig::default()
        },
        ..SimDeviceConfig::default()
    }
}

fn device_with(options: ModelOptions) -> Box<dyn Transport> {
    let model = Model::new(&library(), options).unwrap();
    Box::new(SimDevice::new(model, config()).unwrap())
}

fn device() -> Box<dyn Transport> {
    device_with(ModelOptions::default())
}

fn budget() -> WaitBudget {
    WaitBudget::cycles(10_000).with_wall(Duration::from_secs(60))
}

/// Copies `data` through the device: allocate, fill, program, wait, read back.
fn copy_through(device: &mut dyn Transport, data: &[u8]) -> (Vec<u8>, u64) {
    let src = device.alloc_dma(data.len() as u64, 4096).unwrap();
    let dst = device.alloc_dma(data.len() as u64, 4096).unwrap();
    device.write_dma(&src, 0, data).unwrap();
    device.write32(SRC, src.iova().get() as u32).unwrap();
    device.write32(DST, dst.iova().get() as u32).unwrap();
    device.write32(BEATS, (data.len() / BEAT) as u32).unwrap();
    device.write32(BURST, 16).unwrap();
    device.write32(STRB, 0xffff).unwrap();
    device.write32(CTRL, CTRL_START | CTRL_IRQ_ENABLE).unwrap();
    let event = device.wait_irq(budget()).unwrap();
    let mut out = vec![0; data.len()];
    device.read_dma(&dst, 0, &mut out).unwrap();
    assert_eq!(device.read32(STATUS).unwrap(), STATUS_DONE);
    device.write32(STATUS, STATUS_DONE).unwrap();
    device.free_dma(src).unwrap();
    device.free_dma(dst).unwrap();
    (out, event.cycles.unwrap())
}

#[test]
fn describes_itself() {
    let device = device();
    let info = device.info();
    assert_eq!(info.name, "sim:axi_copy");
    assert_eq!(info.kind, DeviceKind::Simulator);
    assert_eq!(info.register_bytes, 256, "an 8-bit byte address");
    assert_eq!(info.dma_base.get(), 0x8000_0000);
    assert_eq!(info.dma_bytes, 1 << 20);
}

#[test]
fn copies_through_dma_buffers_and_interrupts() {
    let mut device = device();
    assert_eq!(device.read32(ID).unwrap(), ID_VALUE);
    let data = pattern(5, 48 * BEAT);
    let (out, cycles) = copy_through(device.as_mut(), &data);
    assert_eq!(out, data);
    assert!(
        cycles > 48 * 2,
        "48 beats each way take at least 96 cycles, took {cycles}"
    );
    // The interrupt was acknowledged: a further wait times out after its budget.
    match device.wait_irq(WaitBudget::cycles(50)) {
        Err(TransportError::Timeout {
            waited_cycles: Some(50),
            ..
        }) => {}
        other => panic!("expected a timeout after 50 cycles, got {other:?}"),
    }
    // A second copy on the same device works the same way.
    let data = pattern(11, 7 * BEAT);
    assert_eq!(copy_through(device.as_mut(), &data).0, data);
}

#[test]
fn a_wait_returns_at_once_while_the_interrupt_is_raised() {
    let mut device = device();
    let buffer = device.alloc_dma(BEAT as u64, 16).unwrap();
    device.write32(SRC, buffer.iova().get() as u32).unwrap();
    device.write32(DST, buffer.iova().get() as u32).unwrap();
    device.write32(CTRL, CTRL_START | CTRL_IRQ_ENABLE).unwrap();
    device.wait_irq(budget()).unwrap();
    let again = device.wait_irq(WaitBudget::cycles(1)).unwrap();
    assert_eq!(again.cycles, Some(0));
    assert!(matches!(
        device.wait_irq(WaitBudget::default()),
        Err(TransportError::NoWaitBudget)
    ));
}

#[test]
fn register_and_buffer_mistakes_are_errors_not_panics() {
    let mut device = device();
    assert!(matches!(
        device.read32(2),
        Err(TransportError::MisalignedRegister { offset: 2 })
    ));
    assert!(matches!(
        device.write32(256, 0),
        Err(TransportError::AddressOutOfRange { .. })
    ));

    let buffer = device.alloc_dma(100, 64).unwrap();
    assert_eq!(buffer.iova().get() % 64, 0);
    assert!(matches!(
        device.write_dma(&buffer, 90, &[0; 11]),
        Err(TransportError::AddressOutOfRange { .. })
    ));
    let mut out = [0u8; 4];
    assert!(device.read_dma(&buffer, u64::MAX, &mut out).is_err());
    let forged = driver::DmaBuffer::new(buffer.iova(), 100, buffer.token() + 1000);
    assert!(matches!(
        device.read_dma(&forged, 0, &mut out),
        Err(TransportError::UnknownBuffer { .. })
    ));
    device.free_dma(buffer).unwrap();
    assert!(matches!(
        device.free_dma(forged),
        Err(TransportError::UnknownBuffer { .. })
    ));

    match device.alloc_dma(2 << 20, 16) {
        Err(error @ TransportError::OutOfDeviceMemory { .. }) => {
            assert!(error.to_string().contains("largest free block"), "{error}")
        }
        other => panic!("expected out of device memory, got {other:?}"),
    }
    assert!(matches!(
        device.alloc_dma(0, 16),
        Err(TransportError::InvalidAllocation { .. })
    ));
}

#[test]
fn a_failing_design_is_a_device_fault_until_reset() {
    let mut device = device();
    let buffer = device.alloc_dma(64, 16).unwrap();
    device.write_dma(&buffer, 0, &[0x5a; 64]).unwrap();

    let error = device.write32(FATAL, 0xdead).unwrap_err();
    eprintln!("{error}");
    assert!(
        matches!(error, TransportError::DeviceFault { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("$stop/$fatal"), "{error}");
    assert!(matches!(
        device.read32(ID),
        Err(TransportError::DeviceFault { .. })
    ));

    // Reset power-cycles the model; memory and buffers survive.
    device.reset().unwrap();
    assert_eq!(device.read32(ID).unwrap(), ID_VALUE);
    let mut out = [0u8; 64];
    device.read_dma(&buffer, 0, &mut out).unwrap();
    assert_eq!(out, [0x5a; 64]);
    let data = pattern(1, 4 * BEAT);
    assert_eq!(copy_through(device.as_mut(), &data).0, data);
}

#[test]
fn verilator_fatal_errors_do_not_take_the_process_down() {
    let mut device = device();
    // Closing the combinational loop makes the model's evaluation fail to converge, which
    // Verilator treats as fatal (by default it would exit the whole process).
    let error = device
        .write32(LOOP, 1)
        .and_then(|_| device.read32(LOOP))
        .unwrap_err();
    eprintln!("{error}");
    assert!(
        matches!(error, TransportError::DeviceFault { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("converge"), "{error}");
    device.reset().unwrap();
    assert_eq!(device.read32(ID).unwrap(), ID_VALUE);
}

#[test]
fn a_traced_device_writes_a_vcd() {
    let dir = common::scratch_dir("device-trace");
    let path = dir.join("copy.vcd");
    {
        let mut device = device_with(ModelOptions {
            clock: Some("clock".into()),
            trace: Some(path.clone()),
            ..ModelOptions::default()
        });
        let data = pattern(2, 4 * BEAT);
        assert_eq!(copy_through(device.as_mut(), &data).0, data);
    }
    let vcd = std::fs::read_to_string(&path).unwrap();
    assert!(vcd.contains("$enddefinitions"));
    assert!(
        vcd.contains("axi$arvalid") || vcd.contains("axi__024arvalid"),
        "AXI signals traced"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
