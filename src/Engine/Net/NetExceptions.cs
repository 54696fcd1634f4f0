namespace KtConnect.Engine.Net;

/// <summary>A packet that does not follow its wire format (bad length, version, checksum, header).</summary>
public sealed class MalformedPacketException : KtException
{
    public MalformedPacketException(string message)
        : base("MalformedPacket", KtErrorCategory.InvalidData, message)
    {
    }
}

/// <summary>A tun device could not be opened or configured.</summary>
public sealed class TunDeviceException : KtException
{
    public TunDeviceException(string errorId, string message, Exception? inner = null, object? target = null)
        : base(errorId, KtErrorCategory.DeviceError, message, inner, target)
    {
    }
}
