/**
 * `vfud probe`: a virtio-blk disk's serial number. The device has no register for it: a driver
 * asks with a GET_ID request on a virtqueue and the device writes the 20 bytes into guest memory
 * (virtio 1.x §5.2.6). So for this one answer the probe is a driver: it maps a small memfd of its
 * own as guest RAM, brings the device up with one polled queue, sends one GET_ID, then resets the
 * device (device_status 0, which disables the queues and clears everything a driver set, §2.4),
 * puts back the PCI COMMAND and MSI-X Control registers it changed, and unmaps its RAM.
 *
 * Device state outlives a connection in a vfio-user server (spec, "Client Disconnection"), so the
 * probe only does this to a device no driver has set up (device_status 0): one that a VMM left
 * driven, to come back to it, is not touched and the serial is reported as not read.
 *
 * @module
 */
import {
  GuestArena,
  MemfdRam,
  pci,
  PciConfig,
  pollUntil,
  probeVirtioPci,
  type VfioUserClient,
  virtio,
  VirtioBlkDriver,
} from "../client/mod.ts";

/** The serial, or why it was not read. */
export type SerialResult = { serial: string } | { unread: string };

/** Guest RAM of the probe: rings of a 16-entry queue, one request header, 20 bytes, a status. */
const RAM_BYTES = 16 * 1024;
const QUEUE_SIZE = 16;

/** Writes device_status 0 and waits until the device reads back 0 (§2.4, §4.1.4.3.1). */
async function resetDevice(
  client: VfioUserClient,
  common: { bar: number; offset: number },
  timeoutMs: number,
): Promise<void> {
  const at = common.offset + virtio.CommonCfg.DEVICE_STATUS;
  await client.regionWrite(common.bar, at, Uint8Array.of(0));
  await pollUntil(
    async () => (await client.regionRead(common.bar, at, 1))[0] === 0 ? true : undefined,
    "device reset",
    timeoutMs,
  );
}

/**
 * Reads the serial of the virtio-blk function behind `client` with one GET_ID. Returns
 * `{ unread }` when the device is driven or the request fails; throws only when the device could
 * not be put back (it may then be left driven, which the caller must report as a failure).
 */
export async function readSerial(
  client: VfioUserClient,
  timeoutMs: number,
): Promise<SerialResult> {
  const layout = await probeVirtioPci(client);
  const c = layout.common;
  const status = (await client.regionRead(c.bar, c.offset + virtio.CommonCfg.DEVICE_STATUS, 1))[0];
  if (status !== 0) {
    return {
      unread: `a driver has set the device up (device status 0x${status.toString(16)}); ` +
        "its state is left alone",
    };
  }
  const config = new PciConfig(client);
  const command = await config.read16(pci.ConfigReg.COMMAND);
  const msixControl = layout.msix && layout.msix.capOffset + pci.Msix.CONTROL;
  const msix = msixControl === undefined ? undefined : await config.read16(msixControl);

  using ram = new MemfdRam(RAM_BYTES, "vfud-probe");
  try {
    await client.mapRam(ram);
  } catch (e) {
    return { unread: `DMA_MAP of the probe's guest RAM refused: ${(e as Error).message}` };
  }
  client.serveDma = true; // a server that does not mmap the RAM reads it with DMA messages
  let result: SerialResult;
  let driver: VirtioBlkDriver | undefined;
  try {
    driver = await VirtioBlkDriver.create(client, {
      arena: new GuestArena(0n, ram.bytes),
      queueSize: QUEUE_SIZE,
      interrupts: "poll",
      features: [],
      timeoutMs,
    });
    // Polled: keep the INTx line from being signalled at all while we own the device.
    await config.updateCommand(pci.PciCommand.INTX_DISABLE);
    result = { serial: await driver.getId() };
  } catch (e) {
    result = { unread: `GET_ID failed: ${(e as Error).message}` };
  } finally {
    driver?.close();
  }
  // Put everything back; a failure here leaves the device changed: that is an error.
  try {
    await resetDevice(client, c, timeoutMs);
    if (msix !== undefined) await config.write16(msixControl!, msix);
    await config.write16(pci.ConfigReg.COMMAND, command);
    await client.dmaUnmap({ iova: 0n, size: BigInt(RAM_BYTES) });
  } catch (e) {
    throw new Error(`could not put the device back after GET_ID: ${(e as Error).message}`);
  }
  return result;
}
