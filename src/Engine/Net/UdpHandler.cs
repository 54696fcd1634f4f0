using System.Net;

namespace KtConnect.Engine.Net;

/// <summary>
/// Answers UDP datagrams sent to the addresses it serves (the local DNS address). Returning an empty
/// payload sends nothing back.
/// </summary>
public interface IUdpDatagramHandler
{
    bool Serves(IPEndPoint destination);

    ValueTask<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> datagram, IPEndPoint client, IPEndPoint destination,
        CancellationToken cancellationToken);
}
