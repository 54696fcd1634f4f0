using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;

namespace KtConnect.Engine.Net.Linux;

/// <summary>
/// A Linux tun device (/dev/net/tun, TUNSETIFF with IFF_TUN|IFF_NO_PI): whole IP packets, no link header.
/// The device exists while this object holds it open (not persistent), so a crash removes it with its
/// routes. The fd is non-blocking; the reader waits in poll(2) on the device and an eventfd that
/// <see cref="Dispose"/> signals, so shutting down never races a blocked read.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class LinuxTunDevice : ITunDevice
{
    private readonly SafeFd _fd;
    private readonly SafeFd _wake;
    private int _disposed;

    private LinuxTunDevice(SafeFd fd, SafeFd wake, string name, int mtu)
    {
        _fd = fd;
        _wake = wake;
        Name = name;
        Mtu = mtu;
    }

    public string Name { get; }

    public int Mtu { get; }

    /// <summary>
    /// Creates the device, sets its MTU and addresses and brings it up (with `ip`). With
    /// <paramref name="netns"/> the device is created inside that named network namespace (tests).
    /// </summary>
    public static async Task<LinuxTunDevice> CreateAsync(string name, int mtu, IReadOnlyList<string> addressCidrs, string? netns = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(addressCidrs);
        if (Encoding.ASCII.GetByteCount(name) > 15)
            throw new TunDeviceException("TunNameTooLong", $"Interface name '{name}' is longer than 15 characters.", target: name);
        var device = netns is null ? Open(name, mtu) : OpenInNamespace(name, mtu, "/var/run/netns/" + netns);
        try
        {
            string[] ns = netns is null ? [] : ["-n", netns];
            await Ip(cancellationToken, [.. ns, "link", "set", "dev", name, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture)]).ConfigureAwait(false);
            foreach (var cidr in addressCidrs)
            {
                // No duplicate address detection on a point-to-point device: the address is usable at once.
                string[] nodad = cidr.Contains(':', StringComparison.Ordinal) ? ["nodad"] : [];
                await Ip(cancellationToken, [.. ns, "addr", "add", cidr, "dev", name, .. nodad]).ConfigureAwait(false);
            }
            await Ip(cancellationToken, [.. ns, "link", "set", "dev", name, "up"]).ConfigureAwait(false);
            return device;
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    private static async Task Ip(CancellationToken cancellationToken, string[] args)
    {
        var r = await ProcessRunner.RunAsync("ip", args, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!r.Succeeded)
            throw new TunDeviceException("TunConfigureFailed", $"'{r.CommandLine}' failed: {r.StandardError.Trim()}", target: r.CommandLine);
    }

    /// <summary>Opens (creates) the tun device in this thread's network namespace.</summary>
    public static unsafe LinuxTunDevice Open(string name, int mtu)
    {
        var fd = LinuxNative.Open("/dev/net/tun", LinuxNative.O_RDWR | LinuxNative.O_NONBLOCK | LinuxNative.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new TunDeviceException(errno == 13 || errno == 1 ? "TunPermissionDenied" : "TunOpenFailed",
                $"Cannot open /dev/net/tun: {LinuxNative.Error(errno)}. Creating a tun device needs root or CAP_NET_ADMIN.", target: name);
        }
        var safe = new SafeFd(fd);
        try
        {
            var req = default(LinuxNative.IfReq);
            var bytes = Encoding.ASCII.GetBytes(name);
            for (var i = 0; i < bytes.Length; i++) req.Name[i] = bytes[i];
            req.Flags = LinuxNative.IFF_TUN | LinuxNative.IFF_NO_PI;
            if (LinuxNative.Ioctl(fd, LinuxNative.TUNSETIFF, &req) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new TunDeviceException("TunOpenFailed", $"TUNSETIFF {name} failed: {LinuxNative.Error(errno)}.", target: name);
            }
            var wake = LinuxNative.EventFd(0, LinuxNative.EFD_CLOEXEC | LinuxNative.EFD_NONBLOCK);
            if (wake < 0)
                throw new TunDeviceException("TunOpenFailed", $"eventfd failed: {LinuxNative.Error(Marshal.GetLastPInvokeError())}.");
            return new LinuxTunDevice(safe, new SafeFd(wake), name, mtu);
        }
        catch
        {
            safe.Dispose();
            throw;
        }
    }

    /// <summary>Opens the device inside another network namespace (the device belongs to the namespace current at open time).</summary>
    public static LinuxTunDevice OpenInNamespace(string name, int mtu, string netnsPath) =>
        NetworkNamespace.Run(netnsPath, () => Open(name, mtu));

    public unsafe int ReadPacket(Span<byte> buffer)
    {
        var added = false;
        var wakeAdded = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            _wake.DangerousAddRef(ref wakeAdded);
            var fds = stackalloc LinuxNative.PollFd[2];
            while (Volatile.Read(ref _disposed) == 0)
            {
                fixed (byte* p = buffer)
                {
                    var n = LinuxNative.Read(_fd.Fd, p, buffer.Length);
                    if (n > 0) return (int)n;
                    var errno = Marshal.GetLastPInvokeError();
                    if (n < 0 && errno != LinuxNative.EAGAIN && errno != LinuxNative.EINTR)
                        throw new TunDeviceException("TunReadFailed", $"read {Name} failed: {LinuxNative.Error(errno)}.", target: Name);
                }
                fds[0] = new LinuxNative.PollFd { Fd = _fd.Fd, Events = LinuxNative.POLLIN };
                fds[1] = new LinuxNative.PollFd { Fd = _wake.Fd, Events = LinuxNative.POLLIN };
                if (LinuxNative.Poll(fds, 2, -1) < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != LinuxNative.EINTR)
                        throw new TunDeviceException("TunReadFailed", $"poll {Name} failed: {LinuxNative.Error(errno)}.", target: Name);
                }
            }
            return 0;
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
        finally
        {
            if (added) _fd.DangerousRelease();
            if (wakeAdded) _wake.DangerousRelease();
        }
    }

    public unsafe void WritePacket(ReadOnlySpan<byte> packet)
    {
        var added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            fixed (byte* p = packet)
            {
                var n = LinuxNative.Write(_fd.Fd, p, packet.Length);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    // A full queue or a device going down loses this packet; TCP recovers.
                    if (errno is LinuxNative.EAGAIN or LinuxNative.EINTR) return;
                    throw new TunDeviceException("TunWriteFailed", $"write {Name} failed: {LinuxNative.Error(errno)}.", target: Name);
                }
            }
        }
        finally
        {
            if (added) _fd.DangerousRelease();
        }
    }

    public unsafe void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        var added = false;
        try
        {
            _wake.DangerousAddRef(ref added);
            ulong one = 1;
            LinuxNative.Write(_wake.Fd, (byte*)&one, sizeof(ulong));
        }
        finally
        {
            if (added) _wake.DangerousRelease();
        }
        _fd.Dispose();
        _wake.Dispose();
    }
}
